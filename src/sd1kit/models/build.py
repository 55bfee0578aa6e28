"""Runtime modules (diffusers UNet/VAE, transformers CLIP) built from inferred configs; LDM weights in and out.

No hub access: modules are constructed from our configs on the meta device and the file's tensors are assigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from sd1kit.errors import BadFileError
from sd1kit.formats.keys.diffusers import is_vae_attention_projection, unet_keymap, vae_keymap
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX, VAE_PREFIX
from sd1kit.models.configs import (
    TextEncoderConfig, UNetConfig, VAEConfig, infer_text_encoder_config, infer_unet_config, infer_vae_config,
)

StateDict = dict[str, torch.Tensor]
CLIP_LDM_PREFIX = TE_PREFIX  # `cond_stage_model.transformer.text_model.` <-> transformers' CLIPTextModel


@dataclass
class SD1Modules:
    unet: torch.nn.Module | None
    vae: torch.nn.Module | None
    text_encoder: torch.nn.Module | None
    unet_config: UNetConfig | None
    vae_config: VAEConfig | None
    text_encoder_config: TextEncoderConfig | None


def _strip(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _rename(sd: Mapping[str, torch.Tensor], convert, what: str, where: str, reshape=None) -> StateDict:
    out = {}
    for key, value in sd.items():
        new = convert(key)
        if new is None:
            raise BadFileError(where, f"{what} key {key!r} has no counterpart in the other naming")
        out[new] = reshape(key, new, value) if reshape else value
    return out


def _vae_projection_shape(old: str, new: str, value: torch.Tensor) -> torch.Tensor:
    """VAE attention projections: 1x1 convs [c,c,1,1] in LDM, linear [c,c] in diffusers."""
    if is_vae_attention_projection(old) and value.ndim == 4:
        return value.flatten(1)
    if is_vae_attention_projection(new) and value.ndim == 2:
        return value[:, :, None, None]
    return value


def unet_ldm_to_diffusers(sd: Mapping[str, torch.Tensor], config: UNetConfig, where: str = "model") -> StateDict:
    """UNet weights without the `model.diffusion_model.` prefix -> diffusers names."""
    return _rename(sd, unet_keymap(config.layout).to_diffusers, "UNet", where)


def unet_diffusers_to_ldm(sd: Mapping[str, torch.Tensor], config: UNetConfig, where: str = "model") -> StateDict:
    return _rename(sd, unet_keymap(config.layout).to_ldm, "diffusers UNet", where)


def vae_ldm_to_diffusers(sd: Mapping[str, torch.Tensor], config: VAEConfig, where: str = "model") -> StateDict:
    return _rename(sd, vae_keymap(config.layout).to_diffusers, "VAE", where, _vae_projection_shape)


def vae_diffusers_to_ldm(sd: Mapping[str, torch.Tensor], config: VAEConfig, where: str = "model") -> StateDict:
    return _rename(sd, vae_keymap(config.layout).to_ldm, "diffusers VAE", where, _vae_projection_shape)


def _assign(module: torch.nn.Module, sd: StateDict, what: str, where: str) -> torch.nn.Module:
    missing, unexpected = module.load_state_dict(sd, strict=False, assign=True)
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise BadFileError(where, f"{what} weights do not fit the inferred architecture: {detail}")
    return module


def _construct(factory, sd, rename, what: str, where: str) -> torch.nn.Module:
    """Random init when `sd` is None; else build on the meta device and assign the renamed weights."""
    if sd is None:
        return factory()
    with torch.device("meta"):
        module = factory()
    return _assign(module, rename(sd), what, where).eval()


def build_unet(config: UNetConfig, sd: Mapping[str, torch.Tensor] | None = None, where: str = "model"):
    from diffusers import UNet2DConditionModel

    return _construct(lambda: UNet2DConditionModel(**config.to_diffusers()), sd,
                      lambda s: unet_ldm_to_diffusers(s, config, where), "UNet", where)


def build_vae(config: VAEConfig, sd: Mapping[str, torch.Tensor] | None = None, where: str = "model"):
    from diffusers import AutoencoderKL

    return _construct(lambda: AutoencoderKL(**config.to_diffusers()), sd,
                      lambda s: vae_ldm_to_diffusers(s, config, where), "VAE", where)


def build_text_encoder(config: TextEncoderConfig, sd: Mapping[str, torch.Tensor] | None = None,
                       where: str = "model"):
    from transformers import CLIPTextConfig, CLIPTextModel

    hf_config = CLIPTextConfig(**config.to_transformers())
    if sd is None:
        return CLIPTextModel(hf_config)
    with torch.device("meta"):
        te = CLIPTextModel(hf_config)
    prefix = clip_module_prefix(te)
    hf = {prefix + k: v for k, v in sd.items() if k != "embeddings.position_ids"}
    _assign(te, hf, "text encoder", where)
    # position_ids is a non-persistent buffer in current transformers: rebuild it rather than trust the file's.
    embeddings = te.get_submodule(prefix + "embeddings")
    embeddings.register_buffer(
        "position_ids", torch.arange(config.max_positions).unsqueeze(0), persistent=False)
    return te.eval()


def clip_module_prefix(te: torch.nn.Module) -> str:
    """transformers 4 names CLIPTextModel's weights `text_model.*`; transformers 5 drops that segment."""
    return "text_model." if any(k.startswith("text_model.") for k in te.state_dict()) else ""


def load_modules(sd: Mapping[str, torch.Tensor], where: str = "model") -> SD1Modules:
    """Build whichever of UNet / VAE / text encoder a canonical LDM state dict holds."""
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    unet_sd, vae_sd, te_sd = _strip(sd, UNET_PREFIX), _strip(sd, VAE_PREFIX), _strip(sd, CLIP_LDM_PREFIX)
    unet_cfg = infer_unet_config(shapes, where=where) if unet_sd else None
    vae_cfg = infer_vae_config(shapes, where=where) if vae_sd else None
    te_cfg = infer_text_encoder_config(shapes, where=where) if te_sd else None
    return SD1Modules(
        build_unet(unet_cfg, unet_sd, where) if unet_cfg else None,
        build_vae(vae_cfg, vae_sd, where) if vae_cfg else None,
        build_text_encoder(te_cfg, te_sd, where) if te_cfg else None,
        unet_cfg, vae_cfg, te_cfg,
    )


def modules_to_ldm(modules: SD1Modules) -> StateDict:
    """The canonical LDM state dict of live modules (inverse of `load_modules`)."""
    out: StateDict = {}
    if modules.unet is not None:
        sd = unet_diffusers_to_ldm(modules.unet.state_dict(), modules.unet_config)
        out.update({UNET_PREFIX + k: v for k, v in sd.items()})
    if modules.vae is not None:
        sd = vae_diffusers_to_ldm(modules.vae.state_dict(), modules.vae_config)
        out.update({VAE_PREFIX + k: v for k, v in sd.items()})
    if modules.text_encoder is not None:
        prefix = clip_module_prefix(modules.text_encoder)
        sd = modules.text_encoder.state_dict()
        out.update({CLIP_LDM_PREFIX + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
    return out
