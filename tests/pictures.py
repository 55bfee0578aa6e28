"""Pictures for the server and page tests: random noise, and PNGs as base64 (A1111's API carries them so)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, PngImagePlugin


def noise(w: int = 64, h: int | None = None, seed: int = 0) -> Image.Image:
    h = w if h is None else h
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


def png_b64(image: Image.Image, text: str | None = None) -> str:
    """A base64 PNG, with `text` as its "parameters" chunk (A1111's infotext)."""
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode()


def from_b64(data: str) -> Image.Image:
    """A picture from base64 or a data URL, read whole."""
    image = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[-1])))
    image.load()
    return image
