"""Writing pictures: PNG with the infotext in a `parameters` text chunk (as A1111), atomically, under a new
numbered name that never overwrites an existing file."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, PngImagePlugin

from sd1kit.formats.atomic import atomic_path

_UNSAFE = re.compile(r"[^\w\-, ]+")


def prompt_words(prompt: str, limit: int = 8) -> str:
    """A few words of the prompt for a file name: no tags, weights or brackets."""
    text = re.sub(r"<[^>]*>|:\s*[-+]?[\d.]+", " ", prompt)
    words = [w.strip(",") for w in _UNSAFE.sub(" ", text).replace(",", " ").split()]
    return " ".join(w for w in words if w)[:80].strip()


def next_index(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    return max(numbers, default=-1) + 1


FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


def save_image(image: Image.Image, infotext: str, folder: Path, seed: int, prompt: str, fmt: str = "png") -> Path:
    """PNG with a `parameters` text chunk, or JPEG/WebP with the infotext in EXIF UserComment (as A1111)."""
    from sd1kit.metadata.exif import exif_with_comment

    folder.mkdir(parents=True, exist_ok=True)
    words = prompt_words(prompt)
    index = next_index(folder)
    while True:
        path = folder / (f"{index:05d}-{seed}" + (f"-{words}" if words else "") + f".{fmt}")
        if not path.exists():
            break
        index += 1
    with atomic_path(path) as tmp:
        if fmt == "png":
            image.save(tmp, format="PNG", pnginfo=_png_info(infotext))
        else:
            image.save(tmp, format=FORMATS[fmt], exif=exif_with_comment(infotext), quality=95)
    return path


def _png_info(infotext: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)  # tEXt when Latin-1 encodable, else iTXt (as Pillow and A1111)
    return info


def png_bytes(image: Image.Image, infotext: str) -> bytes:
    """The PNG save_image writes, as bytes (a batch worker's picture, sent to the driver that writes it)."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=_png_info(infotext))
    return buffer.getvalue()


def save_png(image: Image.Image, infotext: str, folder: Path, seed: int, prompt: str) -> Path:
    return save_image(image, infotext, folder, seed, prompt, "png")
