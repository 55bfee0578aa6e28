"""What reading one picture's metadata may cost, whatever the file says: the readers' bounds in one place.

A shared picture is untrusted input: a few kilobytes can declare gigapixels, a zTXt chunk can inflate a
thousandfold, a JSON text can nest a hundred thousand levels. Every reader takes its bytes through these limits,
and a picture past one is refused with one line (`BadFileError`) rather than read at any cost. The numbers are far
above what any generator writes (A1111 infotexts are a few KB, ComfyUI graphs rarely a few hundred KB).
"""

from __future__ import annotations

import json
import zlib

from sd1kit.errors import BadFileError

MAX_TEXT_TOTAL = 16 << 20  # all metadata texts of one picture together, decompressed
MAX_JSON = 4 << 20  # one JSON text a reader parses (json.loads builds ~20x its size in objects)
MAX_SEGMENTS = 10_000  # PNG chunks / JPEG segments / WebP chunks other than image data
MAX_PNG_CHUNKS = 200_000  # all PNG chunks, image data included (200 000 x 8 KiB IDAT = 1.6 GB)
STEALTH_MAX_PIXELS = 32_000_000  # stealth metadata needs the pixels decoded: at most this many


class TextBudget:
    """The decompressed text one picture may still yield; `take` refuses the picture beyond it."""

    def __init__(self, where, limit: int = MAX_TEXT_TOTAL):
        self.where, self.limit, self.left = str(where), limit, limit

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise BadFileError(self.where, f"{what} takes the picture's metadata texts past "
                                           f"{self.limit >> 20} MiB; refused")
        self.left -= size

    def inflate(self, data: bytes, what: str, wbits: int = zlib.MAX_WBITS) -> bytes:
        """zlib data decompressed as far as the budget allows (a stream cut short gives what it holds)."""
        out = zlib.decompressobj(wbits).decompress(data, self.left + 1)
        self.take(len(out), what)
        return out


def load_json(text: str, what: str = "JSON"):
    """json.loads with bounds: a text over MAX_JSON or nested past the interpreter's recursion limit raises
    ValueError (what the readers take for malformed metadata), never RecursionError or a memory blow-up."""
    if len(text) > MAX_JSON:
        raise ValueError(f"{what} is {len(text) >> 20} MiB, over the {MAX_JSON >> 20} MiB read")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
