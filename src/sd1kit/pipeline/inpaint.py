"""Inpainting as A1111's img2img does it (`modules/processing.py`): a blurred mask, what fills the masked area
("Masked content"), latent masking during sampling, the original pasted back outside the mask, and the extra
input channels of inpainting checkpoints."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from sd1kit.pipeline import images

MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")


def load_mask(path, width: int, height: int, blur: int, invert: bool) -> Image.Image:
    mask = images.open_picture(path, "L", "mask image")
    if invert:
        mask = ImageOps.invert(mask)
    if mask.size != (width, height):
        mask = mask.resize((width, height), Image.LANCZOS)
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def latent_mask(mask: Image.Image, width: int, height: int) -> torch.Tensor:
    """1 where the picture is kept, 0 where it is repainted, at latent resolution (A1111 rounds it)."""
    small = np.asarray(mask.convert("RGB").resize((width // 8, height // 8)), dtype=np.float32)[..., 0] / 255.0
    return torch.from_numpy(1.0 - np.around(small))[None, None]


def fill_masked(picture: Image.Image, mask: Image.Image) -> Image.Image:
    """"fill": the masked area painted with the picture's colours blurred from outside it (A1111's images.fill)."""
    keep = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 < 0.5
    filled = picture
    for radius in (256, 64, 16, 4, 1):
        blurred = filled.filter(ImageFilter.GaussianBlur(radius))
        filled = Image.fromarray(np.where(keep, np.asarray(picture), np.asarray(blurred)).astype(np.uint8))
    return filled


def inpaint_init(content: str, init: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    if content == "latent noise":
        return init * keep + noise * (1 - keep)
    if content == "latent nothing":
        return init * keep
    return init


def model_conditioning(vae, picture: Image.Image | None, mask: Image.Image | None, width: int, height: int,
                       scale: float, weight: float = 1.0) -> torch.Tensor:
    """The 5 extra input channels of an inpainting UNet: the mask, then the latent of the picture with the
    masked area set to 0 (grey). Without a mask everything is to be painted; without a picture, on grey."""
    pixels = images.to_pixels(picture) if picture is not None else torch.zeros(1, 3, height, width)
    m = torch.ones(1, 1, height, width) if mask is None else \
        torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0).round()[None, None]
    latent = images.encode_pixels(vae, torch.lerp(pixels, pixels * (1.0 - m), weight), scale)
    return torch.cat([torch.nn.functional.interpolate(m, size=latent.shape[-2:]), latent], 1)


def overlay(result: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's overlay: the original picture back outside the (blurred) mask."""
    return Image.composite(result, original, mask)


def crop_region(mask: Image.Image, padding: int) -> tuple[int, int, int, int]:
    """Bounding box of the mask's non-zero pixels, grown by `padding`, inside the picture (A1111 masking.py)."""
    a = np.asarray(mask)
    ys, xs = np.nonzero(a)
    if len(xs) == 0:
        return 0, 0, mask.width, mask.height
    return (max(int(xs.min()) - padding, 0), max(int(ys.min()) - padding, 0),
            min(int(xs.max()) + 1 + padding, mask.width), min(int(ys.max()) + 1 + padding, mask.height))


def _grow(lo: int, hi: int, diff: int, limit: int) -> tuple[int, int]:
    lo, hi = lo - diff // 2, hi + diff - diff // 2
    if hi >= limit:
        lo, hi = lo - (hi - limit), limit
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, limit)


def expand_to_ratio(region, width: int, height: int, image_width: int, image_height: int):
    """Grow the region to the generation's aspect ratio, shifted back inside the picture (A1111)."""
    x1, y1, x2, y2 = region
    if (x2 - x1) / (y2 - y1) > width / height:
        y1, y2 = _grow(y1, y2, int((x2 - x1) / (width / height) - (y2 - y1)), image_height)
    else:
        x1, x2 = _grow(x1, x2, int((y2 - y1) * (width / height) - (x2 - x1)), image_width)
    return x1, y1, x2, y2


def paste_back(result: Image.Image, original: Image.Image, region) -> Image.Image:
    """The generated crop resized into its place in the full picture."""
    x1, y1, x2, y2 = region
    out = original.copy()
    out.paste(result.resize((x2 - x1, y2 - y1), Image.LANCZOS), (x1, y1))
    return out
