"""Tiny ControlNets of the real SD1.5 ControlNet topology (the tiny UNet's encoder, a hint block with 3 stride-2
convolutions), random weights including the zero convolutions, written in every layout they ship in."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sd1kit.dev.tiny import TINY_UNET
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.models.controlnet import ControlNetConfig, diffusers_config_json, ldm_to_diffusers_key

TINY_CONTROLNET = ControlNetConfig(TINY_UNET, 3, (4, 8, 8, 16))
CONTROLNET_LAYOUTS = ("ldm-prefixed", "ldm", "diffusers", "diffusers-file")


def tiny_controlnet(seed: int = 0):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    module = ControlNetModel(**TINY_CONTROLNET.to_diffusers())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():  # zero convolutions too: a trained ControlNet's are not zero
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module.eval()


def _ldm_state(module) -> dict:
    diffusers = module.state_dict()
    inverse = {}
    for key in list(_all_ldm_keys(diffusers)):
        inverse[key] = diffusers[ldm_to_diffusers_key(key, TINY_CONTROLNET.unet)]
    return inverse


def _all_ldm_keys(diffusers_state) -> list[str]:
    from sd1kit.models.controlnet import _diffusers_to_ldm_names, _unet_part_to_ldm

    names = _diffusers_to_ldm_names(list(diffusers_state), "tiny")
    names.update(_unet_part_to_ldm([k for k in diffusers_state if k not in names], None, "tiny"))
    return sorted(names.values())


def write_tiny_controlnet(out: str | os.PathLike, layout: str = "ldm", seed: int = 0) -> Path:
    """ldm-prefixed: a lllyasviel .pth (fp32, `control_model.`); ldm: an A1111-style fp16 .safetensors; diffusers: a
    folder with config.json; diffusers-file: diffusers keys in one .safetensors (fp16)."""
    out = Path(out)
    module = tiny_controlnet(seed)
    if layout == "diffusers":
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(diffusers_config_json(TINY_CONTROLNET))
        write_safetensors(out / "diffusion_pytorch_model.safetensors", module.state_dict())
    elif layout == "diffusers-file":
        write_safetensors(out, {k: v.half() for k, v in module.state_dict().items()})
    elif layout == "ldm-prefixed":
        torch.save({"control_model." + k: v for k, v in _ldm_state(module).items()}, out)
    elif layout == "ldm":
        write_safetensors(out, {k: v.half() for k, v in _ldm_state(module).items()})
    else:
        raise ValueError(f"unknown ControlNet layout {layout!r}")
    return out
