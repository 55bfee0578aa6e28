"""Tiny random-weight models of the real SD1 topology, written as each real distribution writes them.

Widths are shrunk (UNet 32 base channels, VAE 32, CLIP 32 wide and 2 layers); block structure, key names,
containers, dtypes and quirks are the real ones, so the loaders run exactly the code a 2 GB file runs.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

from sd1kit.formats.atomic import atomic_path
from sd1kit.formats.keys.ldm import EMA_BOOKKEEPING, POSITION_IDS, TE_PREFIX, TE_ROOT, UNET_PREFIX, ema_name
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.formats.yaml_config import v1_inference_yaml  # noqa: F401 - re-exported for tests and tools
from sd1kit.models.build import (
    SD1Modules, build_text_encoder, build_unet, build_vae, modules_to_ldm,
)
from sd1kit.models.configs import TextEncoderConfig, UNetConfig, VAEConfig
from sd1kit.models.schedule import ldm_schedule_buffers

TINY_UNET = UNetConfig(4, 4, 32, (1, 2, 2, 2), 2, (True, True, True, False), 1, 32, False)
TINY_VAE = VAEConfig(32, (1, 2, 2, 2), 2, 4)
TINY_TEXT_ENCODER = TextEncoderConfig(49408, 32, 128, 2, 77)

LAYOUTS = {
    "sd15": "SD1.5-style pruned fp16 .safetensors",
    "nai": "NovelAI-leak-style fp32 .ckpt: state_dict wrapper, old CLIP layout, position_ids, EMA decay keys, nested state_dict",
    "wd": "Waifu-Diffusion-style fp32 .ckpt with the full EMA copy and training state",
    "easyfluff": "EasyFluff-style fp16 .safetensors with a v-prediction .yaml beside it",
    "inpainting": "SD1.5-inpainting-style fp16 .safetensors (9-channel UNet input)",
    "diffusers": "diffusers folder: unet/, vae/, text_encoder/ with config.json",
    "nai-official": "the 2024 NovelAI release: diffusers folder with unet/ and vae/ only",
}


def tiny_modules(seed: int = 0, in_channels: int = 4) -> SD1Modules:
    """Random-weight tiny UNet / VAE / CLIP, reproducible from `seed`."""
    torch.manual_seed(seed)
    unet_cfg = UNetConfig(**{**TINY_UNET.as_dict(), "in_channels": in_channels})
    modules = SD1Modules(build_unet(unet_cfg), build_vae(TINY_VAE), build_text_encoder(TINY_TEXT_ENCODER),
                         unet_cfg, TINY_VAE, TINY_TEXT_ENCODER)
    with torch.no_grad():  # zero-initialised layers would hide key-mapping mistakes
        for module in (modules.unet, modules.vae, modules.text_encoder):
            for p in module.parameters():
                if p.abs().sum() == 0:
                    p.normal_(0, 0.02)
    return modules


def tiny_state_dict(seed: int = 0, in_channels: int = 4) -> dict[str, torch.Tensor]:
    """Canonical LDM state dict of a tiny model (UNet + VAE + CLIP, no schedule buffers)."""
    return {k: v.detach().clone() for k, v in modules_to_ldm(tiny_modules(seed, in_channels)).items()}


def _position_ids(dtype=torch.int64) -> torch.Tensor:
    return torch.arange(77, dtype=dtype).unsqueeze(0)


def _old_te_layout(sd: dict) -> dict:
    return {(TE_ROOT + k[len(TE_PREFIX):] if k.startswith(TE_PREFIX) else k): v for k, v in sd.items()}


def _fp16(sd: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}


def _lightning_callback_class():
    """A class pickled by reference as pytorch_lightning's ModelCheckpoint (old checkpoints hold one)."""
    name = "pytorch_lightning.callbacks.model_checkpoint"
    module = sys.modules.get(name)
    if module is None:
        for part in ("pytorch_lightning", "pytorch_lightning.callbacks", name):
            sys.modules.setdefault(part, types.ModuleType(part))
        module = sys.modules[name]
    if not hasattr(module, "ModelCheckpoint"):
        module.ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": name})
    return module.ModelCheckpoint


def _save_ckpt(obj, path: Path, legacy: bool = False) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp, _use_new_zipfile_serialization=not legacy)


def write_tiny_model(out: str | Path, layout: str = "sd15", prediction: str = "epsilon", ztsnr: bool = False,
                     markers: bool = False, seed: int = 0) -> Path:
    """Write a tiny model in `layout` (see LAYOUTS) to `out`; returns the path written.

    prediction="v" writes a v-prediction yaml beside single files (as EasyFluff ships); markers=True writes the
    `v_pred` / `ztsnr` marker keys instead.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    out = Path(out)
    in_channels = 9 if layout == "inpainting" else 4
    sd = tiny_state_dict(seed, in_channels)
    if layout in ("diffusers", "nai-official"):
        return _write_diffusers_folder(out, seed, in_channels, with_text_encoder=layout == "diffusers")
    if layout == "easyfluff":
        prediction = "v"
    if markers and prediction == "v":
        sd["v_pred"] = torch.zeros(0)
    if markers and ztsnr:
        sd["ztsnr"] = torch.zeros(0)
    if layout in ("sd15", "easyfluff", "inpainting"):
        sd[POSITION_IDS] = _position_ids()
        write_safetensors(out, _fp16(sd) if layout != "inpainting" else _fp16(sd))
    elif layout == "nai":
        sd = _old_te_layout({**sd, **ldm_schedule_buffers(), POSITION_IDS: _position_ids()})
        sd.update({EMA_BOOKKEEPING[0]: torch.tensor(0.9999), EMA_BOOKKEEPING[1]: torch.tensor(551602, dtype=torch.int32)})
        sd["state_dict"] = {}  # the leak's stray nested key (A1111 pops it)
        _save_ckpt({"state_dict": sd, "global_step": 551602}, out)
    elif layout == "wd":
        sd.update(ldm_schedule_buffers())
        sd[POSITION_IDS] = _position_ids()
        ema = {ema_name(k): v + 0.001 for k, v in sd.items() if k.startswith(UNET_PREFIX)}
        sd.update(ema)
        sd.update({EMA_BOOKKEEPING[0]: torch.tensor(0.9999), EMA_BOOKKEEPING[1]: torch.tensor(123, dtype=torch.int32)})
        _save_ckpt({"state_dict": sd, "global_step": np.int64(123), "epoch": 2,
                    "pytorch-lightning_version": "1.4.2",
                    "callbacks": {_lightning_callback_class(): {"best_model_score": None, "save_last": True}}}, out)
    if prediction == "v" and not markers:
        out.with_suffix(".yaml").write_text(v1_inference_yaml(v_prediction=True))
    return out


def _write_diffusers_folder(out: Path, seed: int, in_channels: int, with_text_encoder: bool) -> Path:
    modules = tiny_modules(seed, in_channels)
    out.mkdir(parents=True, exist_ok=True)
    parts = {"unet": modules.unet, "vae": modules.vae}
    if with_text_encoder:
        parts["text_encoder"] = modules.text_encoder
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0"}
    for name, module in parts.items():
        folder = out / name
        folder.mkdir(exist_ok=True)
        weights = "model.safetensors" if name == "text_encoder" else "diffusion_pytorch_model.safetensors"
        write_safetensors(folder / weights, {k: v.detach() for k, v in module.state_dict().items()})
        config = module.config.to_dict() if hasattr(module.config, "to_dict") else dict(module.config)
        (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))
        index[name] = ["diffusers" if name != "text_encoder" else "transformers", type(module).__name__]
    if with_text_encoder:
        (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out





def write_tiny_taesd(out, layout: str = "original", width: int = 8, seed: int = 0):
    """A TAESD decoder with random weights: "original" (madebyollin's bare Sequential keys, `.pth`) or "diffusers"
    (AutoencoderTiny names, `.safetensors`). width 64 is the real one."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    decoder = AutoencoderTiny(decoder_block_out_channels=(width,) * 4).decoder.state_dict()
    if layout == "diffusers":
        write_safetensors(out, {f"decoder.{k}": v for k, v in decoder.items()})
    else:  # layers.N -> N + 1: the original Sequential starts with a clamp module
        state = {}
        for key, value in decoder.items():
            index, rest = key[len("layers."):].split(".", 1)
            state[f"{int(index) + 1}.{rest}"] = value
        torch.save(state, out)
    return out
