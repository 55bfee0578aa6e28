"""TAESD, the tiny autoencoder for SD1 latents (madebyollin): a fast-mode decoder (A1111's "VAE Decoder: TAESD")
when the user provides its weights, as the original `taesd_decoder.pth` / `.safetensors` (a bare Sequential) or in
diffusers' `AutoencoderTiny` naming. It decodes the diffusion latent directly (no 0.18215 scale)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from sd1kit.errors import BadFileError, Sd1kitError
from sd1kit.formats.hashes import file_identity
from sd1kit.formats.source import open_source

FOLDER = "VAE-taesd"  # A1111's models/VAE-taesd
NAMES = ("taesd_decoder.safetensors", "taesd_decoder.pth", "diffusion_pytorch_model.safetensors", "taesd.safetensors")
_CACHE: dict[tuple, torch.nn.Module] = {}


def _diffusers_names(keys: list[str]) -> dict[str, str]:
    """Original decoder Sequential keys ("1.weight", "3.conv.0.weight": index 0 is a clamp) -> diffusers'."""
    if any(k.startswith("decoder.layers.") for k in keys):
        return {k: k for k in keys if k.startswith("decoder.")}
    out = {}
    for key in keys:
        m = re.match(r"(\d+)\.(.*)", key)
        if m is None:
            raise BadFileError("TAESD", f"unexpected key {key!r}: not a TAESD decoder")
        out[key] = f"decoder.layers.{int(m.group(1)) - 1}.{m.group(2)}"
    return out


def find_taesd(root: Path | None) -> Path:
    folder = (root or Path(os.environ.get("SD1KIT_HOME", ".")) / "models") / FOLDER
    for name in NAMES:
        if (folder / name).is_file():
            return folder / name
    raise Sd1kitError("TAESD", f"no TAESD decoder weights in {folder} (taesd_decoder.pth from madebyollin/taesd)")


def load_taesd(path: str | os.PathLike, device="cpu", dtype=torch.float32) -> torch.nn.Module:
    from diffusers import AutoencoderTiny

    path = Path(path)
    key = (*file_identity(path), str(device), dtype)
    if key not in _CACHE:
        source = open_source(path)
        if not source.safe:
            raise Sd1kitError(path, "unsafe pickle: references " + ", ".join(source.unsafe_globals[:3]))
        names = _diffusers_names(list(source.tensors))
        state = {new: source.get_tensor(old) for old, new in names.items()}
        if "decoder.layers.0.weight" not in state or state["decoder.layers.0.weight"].shape[1] != 4:
            raise BadFileError(path, "not an SD1 TAESD decoder (its first layer does not take 4 latent channels)")
        width = state["decoder.layers.0.weight"].shape[0]
        module = AutoencoderTiny(decoder_block_out_channels=(width,) * 4)
        missing = [k for k in module.decoder.state_dict() if f"decoder.{k}" not in state]
        if missing:
            raise BadFileError(path, f"TAESD decoder weights missing: {missing[:2]}")
        module.load_state_dict(state, strict=False)
        _CACHE.clear()
        _CACHE[key] = module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return _CACHE[key]


@torch.no_grad()
def decode_taesd(taesd, latents: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] from diffusion latents."""
    dtype = next(taesd.parameters()).dtype
    return taesd.decode(latents.to(dtype)).sample.float()
