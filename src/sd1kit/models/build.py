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


def unet_ldm_to_diffusers(sd: Mapping[str, torch.Tensor], config: UNetConfig, where: str = "model") -> StateDict:
    """UNet weights without the `model.diffusion_model.` prefix -> diffusers names."""
    keymap = unet_keymap(config.layout)
    out = {}
    for key, value in sd.items():
        new = keymap.to_diffusers(key)
        if new is None:
            raise BadFileError(where, f"UNet key {UNET_PREFIX + key!r} has no diffusers counterpart")
        out[new] = value
    return out


def unet_diffusers_to_ldm(sd: Mapping[str, torch.Tensor], config: UNetConfig, where: str = "model") -> StateDict:
    keymap = unet_keymap(config.layout)
    out = {}
    for key, value in sd.items():
        new = keymap.to_ldm(key)
        if new is None:
            raise BadFileError(where, f"diffusers UNet key {key!r} has no LDM counterpart")
        out[new] = value
    return out


def vae_ldm_to_diffusers(sd: Mapping[str, torch.Tensor], config: VAEConfig, where: str = "model") -> StateDict:
    keymap = vae_keymap(config.layout)
    out = {}
    for key, value in sd.items():
        new = keymap.to_diffusers(key)
        if new is None:
            raise BadFileError(where, f"VAE key {VAE_PREFIX + key!r} has no diffusers counterpart")
        out[new] = value.flatten(1) if is_vae_attention_projection(key) and value.ndim == 4 else value
    return out


def vae_diffusers_to_ldm(sd: Mapping[str, torch.Tensor], config: VAEConfig, where: str = "model") -> StateDict:
    keymap = vae_keymap(config.layout)
    out = {}
    for key, value in sd.items():
        new = keymap.to_ldm(key)
        if new is None:
            raise BadFileError(where, f"diffusers VAE key {key!r} has no LDM counterpart")
        out[new] = value[:, :, None, None] if is_vae_attention_projection(new) and value.ndim == 2 else value
    return out


def _assign(module: torch.nn.Module, sd: StateDict, what: str, where: str) -> torch.nn.Module:
    missing, unexpected = module.load_state_dict(sd, strict=False, assign=True)
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise BadFileError(where, f"{what} weights do not fit the inferred architecture: {detail}")
    return module


def build_unet(config: UNetConfig, sd: Mapping[str, torch.Tensor] | None = None, where: str = "model"):
    from diffusers import UNet2DConditionModel

    if sd is None:
        return UNet2DConditionModel(**config.to_diffusers())
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config.to_diffusers())
    return _assign(unet, unet_ldm_to_diffusers(sd, config, where), "UNet", where).eval()


def build_vae(config: VAEConfig, sd: Mapping[str, torch.Tensor] | None = None, where: str = "model"):
    from diffusers import AutoencoderKL

    if sd is None:
        return AutoencoderKL(**config.to_diffusers())
    with torch.device("meta"):
        vae = AutoencoderKL(**config.to_diffusers())
    return _assign(vae, vae_ldm_to_diffusers(sd, config, where), "VAE", where).eval()


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
