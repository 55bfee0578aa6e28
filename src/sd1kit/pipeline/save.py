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
    numbers = [int(m.group(1)) for p in folder.glob("*.png") if (m := re.match(r"(\d{5})-", p.name))]
    return max(numbers, default=-1) + 1


def save_png(image: Image.Image, infotext: str, folder: Path, seed: int, prompt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    words = prompt_words(prompt)
    index = next_index(folder)
    while True:
        path = folder / (f"{index:05d}-{seed}" + (f"-{words}" if words else "") + ".png")
        if not path.exists():
            break
        index += 1
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)  # tEXt when Latin-1 encodable, else iTXt (as Pillow and A1111 do)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path
