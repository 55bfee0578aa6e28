"""Latents <-> pixels as A1111 does it: VAE decode with a NaN check and an automatic fp32 retry, uint8 by
truncation, init images resized to the request."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sd1kit.errors import Sd1kitError


def decode(vae, latents: torch.Tensor, scale: float) -> tuple[list[Image.Image], bool]:
    """PIL images; the bool says whether fp16/bf16 overflowed and the decode was redone in fp32."""
    dtype = next(vae.parameters()).dtype
    with torch.no_grad():
        pixels = vae.decode((latents / scale).to(dtype)).sample.float()
        retried = False
        if not torch.isfinite(pixels).all() and dtype != torch.float32:
            vae.float()
            try:
                pixels = vae.decode((latents / scale).float()).sample.float()
            finally:
                vae.to(dtype)
            retried = True
    if not torch.isfinite(pixels).all():
        raise Sd1kitError("VAE", "decoded image has NaN/inf values even in fp32: the VAE weights are broken")
    arrays = (255.0 * ((pixels + 1.0) / 2.0).clamp(0, 1)).permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
    return [Image.fromarray(a) for a in arrays], retried


def load_image(path, width: int, height: int) -> Image.Image:
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except (OSError, ValueError) as e:
        raise Sd1kitError(path, f"not a readable image ({e.__class__.__name__})") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.LANCZOS)  # A1111's "Just resize"
    return image


def to_pixels(image: Image.Image) -> torch.Tensor:
    """[1, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def encode_pixels(vae, pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """Latent of [-1, 1] pixels: the mean of the VAE's posterior (deterministic), times the scale factor."""
    first = next(vae.parameters())
    with torch.no_grad():
        return vae.encode(pixels.to(first.device, first.dtype)).latent_dist.mean.float() * scale


def encode(vae, image: Image.Image, scale: float) -> torch.Tensor:
    return encode_pixels(vae, to_pixels(image), scale)
