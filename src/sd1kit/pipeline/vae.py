"""External VAEs (`--vae`): `.pt` / `.ckpt` / `.safetensors` in LDM or diffusers naming, e.g. NovelAI's
animevae.pt or vae-ft-mse-840000-ema-pruned, loaded safely and cached by file identity."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_hashes, file_identity
from sd1kit.formats.keys.ldm import VAE_PREFIX
from sd1kit.formats.source import _diffusers_renames, open_source
from sd1kit.models.build import build_vae
from sd1kit.models.configs import infer_vae_config

VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


@dataclass
class ExternalVAE:
    module: torch.nn.Module
    name: str  # A1111's "VAE": the file name
    short_hash: str  # A1111's "VAE hash"


_CACHE: dict[tuple, ExternalVAE] = {}


def _vae_state_dict(path: Path) -> dict:
    source = open_source(path)
    if not source.safe:
        raise Sd1kitError(path, "unsafe pickle: references " + ", ".join(source.unsafe_globals))
    sd = source.load_state_dict()
    sd = {k[len(VAE_PREFIX):] if k.startswith(VAE_PREFIX) else k: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if k.startswith(VAE_PARTS)}  # drop loss.*, EMA and other training state
    if not sd:
        raise Sd1kitError(path, "no VAE weights in this file (no encoder./decoder. tensors)")
    if any(k.startswith("encoder.down_blocks.") for k in sd):  # diffusers naming
        renames = _diffusers_renames("vae", list(sd), path)
        sd = {renames[k][len(VAE_PREFIX):]: v[:, :, None, None] if v.ndim == 2 and ".attn_1." in renames[k] else v
              for k, v in sd.items()}
    return {VAE_PREFIX + k: v for k, v in sd.items()}


def load_vae(path: str | os.PathLike, device: torch.device, dtype: torch.dtype) -> ExternalVAE:
    path = Path(path)
    if not path.is_file():
        raise Sd1kitError(path, "no such VAE file")
    key = (*file_identity(path), str(device), dtype)
    if key not in _CACHE:
        sd = _vae_state_dict(path)
        config = infer_vae_config({k: tuple(v.shape) for k, v in sd.items()}, where=str(path))
        if config.z_channels != 4:
            raise Sd1kitError(path, f"a {config.z_channels}-channel VAE (SD3/FLUX family?), not SD1's 4 latent channels")
        module = build_vae(config, {k[len(VAE_PREFIX):]: v for k, v in sd.items()}, where=str(path))
        _CACHE.clear()
        _CACHE[key] = ExternalVAE(module.to(device=device, dtype=dtype), path.name, file_hashes(path).sha256[:10])
    return _CACHE[key]
