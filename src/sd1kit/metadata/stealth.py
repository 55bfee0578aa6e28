"""Stealth metadata: A1111's stealth-pnginfo extension (and NovelAI) hide the infotext in the pixels' least
significant bits: a 15-byte signature, a 32-bit count of data bits, then the data (gzip for the `*comp` kinds),
in the alpha channel (`stealth_png*`) or in R, G, B (`stealth_rgb*`), column by column (x outer, y inner), as the
extension's public reader `read_info_from_image_stealth` walks them.

Only the columns the bits occupy are looked at, gzip is inflated against the picture's text budget, and
`clear_stealth` removes the data for `info --strip`.
"""

from __future__ import annotations

import gzip
import io
import zlib

import numpy as np
from PIL import Image

from sd1kit.metadata.limits import TextBudget

STEALTH_SIGNATURES = {"stealth_pnginfo": False, "stealth_pngcomp": True,
                      "stealth_rgbinfo": False, "stealth_rgbcomp": True}  # -> gzip-compressed
HEADER_BITS = 8 * 15 + 32


def _sources(image: Image.Image) -> list[str]:
    return ["alpha", "rgb"] if image.mode == "RGBA" else ["rgb"] if image.mode == "RGB" else []


def _capacity(image: Image.Image, kind: str) -> int:
    return image.width * image.height * (1 if kind == "alpha" else 3)


def _lsbs(image: Image.Image, kind: str, start: int, stop: int) -> np.ndarray:
    """The least significant bits start..stop of `kind` in the writers' order, from the columns holding them."""
    per_pixel = 1 if kind == "alpha" else 3
    stop = min(stop, _capacity(image, kind))
    columns = min(image.width, -(-stop // (per_pixel * image.height))) if stop > 0 else 0
    part = np.asarray(image.crop((0, 0, columns, image.height)))
    if kind == "alpha":
        seq = part[..., 3].T.reshape(-1)
    else:
        seq = part[..., :3].transpose(1, 0, 2).reshape(-1)
    return seq[start:stop] & 1


def _bytes(bits: np.ndarray) -> bytes:
    return np.packbits(bits[: len(bits) // 8 * 8]).tobytes()


def stealth_extent(image: Image.Image) -> tuple[str, str, int] | None:
    """(kind, signature, data bits) of the stealth data a reader would find first, or None; the length is as
    written (it may exceed the picture)."""
    for kind in _sources(image):
        signature = _bytes(_lsbs(image, kind, 0, 120)).decode("latin-1")
        if signature not in STEALTH_SIGNATURES or (kind == "alpha") != ("png" in signature):
            continue
        return kind, signature, int.from_bytes(_bytes(_lsbs(image, kind, 120, HEADER_BITS)), "big")
    return None


def _gunzip(data: bytes, budget: TextBudget) -> bytes:
    """gzip.decompress (members one after another, CRC checked) reading no more than the budget allows."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        out = stream.read(budget.left + 1)
    budget.take(len(out), "the stealth metadata")
    return out


def read_stealth(image: Image.Image, budget: TextBudget | None = None) -> str | None:
    """The stealth text of a decoded RGB/RGBA picture, or None (no signature, a length past the picture, bad
    gzip); a text past the picture's budget refuses the picture."""
    found = stealth_extent(image)
    if found is None:
        return None
    kind, signature, length = found
    if length <= 0 or HEADER_BITS + length > _capacity(image, kind):
        return None
    budget = budget or TextBudget("<picture>")
    data = _bytes(_lsbs(image, kind, HEADER_BITS, HEADER_BITS + length))
    try:
        if STEALTH_SIGNATURES[signature]:
            data = _gunzip(data, budget)
        else:
            budget.take(len(data), "the stealth metadata")
        return data.decode("utf-8", errors="replace")
    except (OSError, EOFError, zlib.error):
        return None


def _overwrite(image: Image.Image, kind: str, stop: int, bit: int) -> None:
    """Set the first `stop` least significant bits of `kind` (writers' order) to `bit`, in place: only the
    columns holding them are copied out and pasted back."""
    height, per_pixel = image.height, 1 if kind == "alpha" else 3
    columns = min(image.width, -(-stop // (per_pixel * height)))
    part = np.array(image.crop((0, 0, columns, height)))
    channels = part[..., 3:4] if kind == "alpha" else part[..., :3]
    seq = channels.transpose(1, 0, 2).reshape(-1)  # a copy, in the writers' order
    seq[:stop] = (seq[:stop] & 0xFE) | bit
    channels[...] = seq.reshape(columns, height, channels.shape[2]).transpose(1, 0, 2)
    image.paste(Image.fromarray(part), (0, 0))


def clear_stealth(image: Image.Image) -> tuple[Image.Image, list[str]] | None:
    """The decoded picture with every stealth block's bits overwritten (alpha bits set to 1, restoring the opaque
    255 the writers start from; R, G, B bits cleared), and what was done; None when it carries none. The picture
    is changed in place; an alpha channel left fully opaque is dropped (a new picture)."""
    done: list[str] = []
    while len(done) < 2 and (found := stealth_extent(image)) is not None:
        kind, signature, length = found
        _overwrite(image, kind, min(HEADER_BITS + max(length, 0), _capacity(image, kind)), 1 if kind == "alpha" else 0)
        done.append(f"{signature} in the {'alpha channel' if kind == 'alpha' else 'R, G, B'} bits")
    if not done:
        return None
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
        done.append("its alpha channel, opaque once cleared, dropped")
    return image, done
