"""Hires fix's upscale between the two passes (A1111 `processing.py` / `shared.latent_upscale_modes`): in latent
space, by resampling the decoded picture, or by a model upscaler of the models folder (`sd1kit.upscalers`), as
A1111's `images.resize_image(0, ...)` runs one: by the larger of the two side ratios, then Lanczos to the size."""

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


def check_upscaler(name: str, models_dir: str | None = None):
    """None for a latent or resampling upscaler, else the installed model upscaler (`upscalers.UpscalerFile`);
    one line naming the file and the folder to put it in when it is not installed."""
    if name in LATENT_UPSCALERS or name in PIXEL_UPSCALERS:
        return None
    from sd1kit.upscalers import find_upscaler

    known_lower = {n.lower() for n in (*LATENT_UPSCALERS, *PIXEL_UPSCALERS)}
    if not isinstance(name, str) or not name.strip() or name.lower() in known_lower:  # "latent": a misspelling
        known = ", ".join([*LATENT_UPSCALERS, *PIXEL_UPSCALERS])
        raise Sd1kitError("hires upscaler", f"unknown upscaler {name!r}; one of {known}, or a model upscaler")
    return find_upscaler(name, models_dir, "hires upscaler")


def upscale_latents(latents: torch.Tensor, name: str, width: int, height: int) -> torch.Tensor:
    mode, antialias = LATENT_UPSCALERS[name]
    return F.interpolate(latents, size=(height // 8, width // 8), mode=mode, antialias=antialias)


def upscale_pictures(pictures: list[Image.Image], name: str, width: int, height: int, model=None,
                     tiles: tuple[int | None, int | None] = (None, None), device=None) -> list[Image.Image]:
    """Each picture at width x height: resampled (`name` in PIXEL_UPSCALERS), or through the model upscaler `model`
    (an UpscalerFile; `tiles` = tile, overlap) by max(width / w, height / h), then Lanczos to the size."""
    if model is None:
        return [p.resize((width, height), PIXEL_UPSCALERS[name]) for p in pictures]
    from sd1kit.upscalers import upscale_with

    out = []
    for picture in pictures:
        scale = max(width / picture.width, height / picture.height)
        if scale > 1.0:
            picture = upscale_with(picture, model, scale, *tiles, device=device)
        out.append(picture if picture.size == (width, height) else picture.resize((width, height), Image.LANCZOS))
    return out
