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

    words = prompt_words(prompt)
    path = numbered_path(folder, f"{seed}" + (f"-{words}" if words else ""), fmt)
    with atomic_path(path) as tmp:
        if fmt == "png":
            image.save(tmp, format="PNG", pnginfo=png_info({"parameters": infotext}))
        else:
            image.save(tmp, format=FORMATS[fmt], exif=exif_with_comment(infotext), quality=95)
    return path


def numbered_path(folder: Path, name: str, fmt: str) -> Path:
    """folder/NNNNN-name.fmt under the next number no file has (the folder made if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    index = next_index(folder)
    while (folder / f"{index:05d}-{name}.{fmt}").exists():
        index += 1
    return folder / f"{index:05d}-{name}.{fmt}"


def png_info(texts: dict[str, str]) -> PngImagePlugin.PngInfo:
    """PNG text chunks: tEXt when Latin-1 encodable, else iTXt (as Pillow and A1111)."""
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    return info


def png_bytes(image: Image.Image, infotext: str) -> bytes:
    """The PNG save_image writes, as bytes (a batch worker's picture, sent to the driver that writes it)."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info({"parameters": infotext}))
    return buffer.getvalue()


def save_png(image: Image.Image, infotext: str, folder: Path, seed: int, prompt: str) -> Path:
    return save_image(image, infotext, folder, seed, prompt, "png")
