"""Latents <-> pixels as A1111 does it: VAE decode with a NaN check and an automatic fp32 retry, uint8 by
truncation, init images resized to the request."""

from __future__ import annotations

import contextlib
import numpy as np
import torch
from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.device import compute_dtype


def _decode_full(vae, z: torch.Tensor) -> torch.Tensor:
    return vae.decode(z).sample.float()


AUTO_BANDED_PIXELS = 1 << 20  # pictures past 1 MP decode in bands even unasked: the whole decode's peak grows fastest


def _decoder(vae, latents: torch.Tensor, tiled: bool):
    """The whole decode, or the banded one (`vae_bands`: the same pixels in less memory: asked with `tiled`, for
    pictures over AUTO_BANDED_PIXELS, and where the whole decode would not fit the free memory)."""
    from sd1kit.pipeline import vae_bands

    from sd1kit.pipeline.memory import decode_banded

    size = (latents.shape[-1] * 8, latents.shape[-2] * 8)
    precision = "bf16" if reduced_precision(vae) else "fp32"
    big = size[0] * size[1] > AUTO_BANDED_PIXELS or decode_banded(precision, size)  # or the whole would not fit
    return vae_bands.decode if (tiled or big) and vae_bands.supports(vae) else _decode_full


def decode_tiled(vae, latents: torch.Tensor, scale: float) -> tuple[list[Image.Image], bool]:
    return decode(vae, latents, scale, tiled=True)


def per_image(run, z: torch.Tensor) -> torch.Tensor:
    """run(z) over the batch image by image: a convolution's rounding depends on its batch size, so a picture of a
    batch decodes bit for bit as its seed alone does only in a micro-batch of one (the TAESD decoder too)."""
    return torch.cat([run(z[i:i + 1]) for i in range(z.shape[0])])


def decode(vae, latents: torch.Tensor, scale: float, tiled: bool = False) -> tuple[list[Image.Image], bool]:
    """PIL images, each decoded alone (tiled too); the bool says whether fp16/bf16 overflowed and the decode
    was redone in fp32 (for the pictures that overflowed: the others stay as they decode alone)."""
    dtype = compute_dtype(vae)
    run = _decoder(vae, latents, tiled)
    with torch.no_grad():
        pixels = [run(vae, (latents[i:i + 1] / scale).to(dtype)) for i in range(latents.shape[0])]
        broken = [i for i, p in enumerate(pixels) if not torch.isfinite(p).all()]
        retried = bool(broken) and reduced_precision(vae)
        if retried:
            with in_fp32(vae):
                for i in broken:
                    pixels[i] = run(vae, (latents[i:i + 1] / scale).float())
    pixels = torch.cat(pixels)
    if not torch.isfinite(pixels).all():
        raise Sd1kitError("VAE", "decoded image has NaN/inf values even in fp32: the VAE weights are broken")
    return to_pictures(pixels), retried


def reduced_precision(vae) -> bool:
    """Whether the VAE computes in fp16/bf16: its weights' dtype, or (OpenVINO) the precision it was compiled
    for."""
    own = getattr(vae, "reduced_precision", None)
    return own() if own is not None else compute_dtype(vae) != torch.float32


@contextlib.contextmanager
def in_fp32(vae):
    """The VAE computing in fp32 for the block (the retry after an overflow), then as it was."""
    own = getattr(vae, "in_fp32", None)
    if own is not None:
        with own():
            yield
        return
    dtype = compute_dtype(vae)
    vae.float()
    try:
        yield
    finally:
        vae.to(dtype)


def to_pictures(pixels: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [-1, 1] -> RGB pictures."""
    arrays = (255.0 * ((pixels.float() + 1.0) / 2.0).clamp(0, 1)).permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
    return [Image.fromarray(a) for a in arrays]


def open_picture(source, mode: str, what: str = "image") -> Image.Image:
    """A file path or an already decoded PIL image (the HTTP API's), converted to `mode`."""
    if isinstance(source, Image.Image):
        return source.convert(mode)
    try:
        with Image.open(source) as im:
            return im.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise Sd1kitError(source, f"not a readable {what} ({e.__class__.__name__})") from None


def load_image(path, width: int | None, height: int | None) -> Image.Image:
    """An RGB picture, resized to width x height (A1111's "Just resize") unless they are None."""
    image = open_picture(path, "RGB")
    if width is not None and image.size != (width, height):
        image = image.resize((width, height), Image.LANCZOS)
    return image


def to_pixels(image: Image.Image) -> torch.Tensor:
    """[1, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def encode_pixels(vae, pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """Latent of [-1, 1] pixels: the mean of the VAE's posterior (deterministic), times the scale factor."""
    device = next(vae.parameters()).device
    with torch.no_grad():
        return vae.encode(pixels.to(device, compute_dtype(vae))).latent_dist.mean.float() * scale


def encode(vae, image: Image.Image, scale: float) -> torch.Tensor:
    return encode_pixels(vae, to_pixels(image), scale)


# SD1 latent channels -> RGB, the linear map A1111's "Approx cheap" live preview uses
LATENT_RGB = torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264],
                           [-0.184, -0.271, -0.473]])


def preview(latent: torch.Tensor) -> Image.Image:
    """A cheap picture of an x0-hat latent [4, H, W] (or [1, 4, H, W]) for live previews, at latent size."""
    z = latent.reshape(4, *latent.shape[-2:]).float().cpu()
    rgb = torch.einsum("lhw,lr->hwr", z, LATENT_RGB)
    return Image.fromarray((255 * ((rgb + 1) / 2).clamp(0, 1)).to(torch.uint8).numpy())
