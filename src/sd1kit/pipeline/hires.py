"""Hires fix's upscale between the two passes (A1111 `processing.py` / `shared.latent_upscale_modes`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from sd1kit.errors import Sd1kitError

# A1111 names -> (interpolate mode, antialias)
LATENT_UPSCALERS = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
PIXEL_UPSCALERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}


def target_size(width: int, height: int, scale: float, resize: tuple[int, int] | None) -> tuple[int, int]:
    """A1111: an explicit resize wins (a missing side follows the aspect ratio), else int(size * scale)."""
    if resize and (resize[0] or resize[1]):
        w, h = resize
        if not w:
            w = int(h * width / height)
        if not h:
            h = int(w * height / width)
        return w, h
    return int(width * scale), int(height * scale)


def check_upscaler(name: str) -> None:
    if name not in LATENT_UPSCALERS and name not in PIXEL_UPSCALERS:
        known = ", ".join([*LATENT_UPSCALERS, *PIXEL_UPSCALERS])
        raise Sd1kitError("hires upscaler", f"unknown upscaler {name!r}; one of {known}")


def upscale_latents(latents: torch.Tensor, name: str, width: int, height: int) -> torch.Tensor:
    mode, antialias = LATENT_UPSCALERS[name]
    return F.interpolate(latents, size=(height // 8, width // 8), mode=mode, antialias=antialias)


def upscale_pictures(pictures: list[Image.Image], name: str, width: int, height: int) -> list[Image.Image]:
    return [p.resize((width, height), PIXEL_UPSCALERS[name]) for p in pictures]
