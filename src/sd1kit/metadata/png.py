"""PNG text chunks (tEXt, zTXt, iTXt; PNG specification §11.3.4) and the EXIF chunk (eXIf, PNG 3rd edition §11.3.6;
Civitai's PNG exports keep their infotext there, in UserComment) read by walking the chunks, wherever they stand:
before or after the image data, without decoding a pixel. Chunk counts and decompressed sizes are bounded
(`metadata.limits`); a file past them is refused."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

from sd1kit.errors import BadFileError
from sd1kit.metadata.limits import MAX_PNG_CHUNKS, MAX_SEGMENTS, TextBudget

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
READ_SHORT = (*TEXT_CHUNKS, b"eXIf")  # chunks read even when the file ends before their CRC
# IHDR colour type -> the mode Pillow opens it in (8- and 16-bit alike)
COLOUR_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


@dataclass
class PngHeader:
    size: tuple[int, int] | None = None
    mode: str | None = None
    bit_depth: int | None = None
    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    exif: bytes | None = None  # the first eXIf chunk's data (a TIFF block)


def _latin1(data: bytes) -> str:
    return data.decode("latin-1")


def _text_chunk(kind: bytes, data: bytes, budget: TextBudget) -> tuple[str, str]:
    key, _, rest = data.partition(b"\0")
    what = f"the {kind.decode()} chunk {_latin1(key[:40])!r}"
    if kind == b"tEXt":
        budget.take(len(rest), what)
        return _latin1(key), _latin1(rest)
    if kind == b"zTXt":
        if rest[:1] != b"\0":
            raise ValueError("unknown compression method")
        return _latin1(key), _latin1(budget.inflate(rest[1:], what))
    compressed, method, rest = rest[0:1], rest[1:2], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if compressed == b"\1":
        if method != b"\0":
            raise ValueError("unknown compression method")
        text = budget.inflate(text, what)
    else:
        budget.take(len(text), what)
    return _latin1(key), text.decode("utf-8", errors="replace")


def _chunk_heads(f, where: str, found: PngHeader):
    """(kind, length) of each chunk up to IEND, the file left at the chunk's data; counts bounded."""
    size = os.fstat(f.fileno()).st_size
    total = other = 0
    while True:
        head = f.read(8)
        if len(head) < 8:
            found.warnings.append("the PNG is truncated (no IEND chunk)")
            return
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            return
        total += 1
        other += kind != b"IDAT"
        if other > MAX_SEGMENTS or total > MAX_PNG_CHUNKS:
            what = f"{MAX_SEGMENTS} chunks besides its image data" if other > MAX_SEGMENTS \
                else f"{MAX_PNG_CHUNKS} chunks"
            raise BadFileError(where, f"the PNG has more than {what}; refused")
        here = f.tell()
        if here + length + (0 if kind in READ_SHORT else 4) > size:  # a text chunk short of its CRC is read
            found.warnings.append(f"the PNG is truncated inside a {_latin1(kind)} chunk")
            return
        yield kind, length
        f.seek(here + length + 4)  # past the data (if not read) and the CRC: a damaged chunk is still read


def _ihdr(data: bytes, found: PngHeader) -> None:
    if len(data) >= 10:
        width, height, depth, colour = struct.unpack(">IIBB", data[:10])
        found.size, found.bit_depth, found.mode = (width, height), depth, COLOUR_MODES.get(colour)


def read_png(path: str | os.PathLike, budget: TextBudget | None = None) -> PngHeader:
    """Size, mode and every text chunk of a PNG (the first of each keyword), without decoding the image."""
    found = PngHeader()
    budget = budget or TextBudget(path)
    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            found.warnings.append("not a PNG")
            return found
        for kind, length in _chunk_heads(f, str(path), found):
            if kind == b"IHDR":
                _ihdr(f.read(min(length, 13)), found)
            elif kind in TEXT_CHUNKS:
                _read_text(f, kind, length, budget, found)
            elif kind == b"eXIf" and found.exif is None:
                budget.take(length, "the eXIf chunk")
                found.exif = f.read(length)
    return found


def _read_text(f, kind: bytes, length: int, budget: TextBudget, found: PngHeader) -> None:
    if length > budget.left:  # refused unread
        budget.take(length, f"a {length / (1 << 20):.0f} MiB {kind.decode()} chunk")
    data = f.read(length)
    try:
        key, text = _text_chunk(kind, data, budget)
    except (ValueError, zlib.error, IndexError) as e:
        found.warnings.append(f"an unreadable {kind.decode()} chunk was skipped ({e})")
        return
    found.texts.setdefault(key, text)


def png_texts(path: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """Every tEXt / zTXt / iTXt chunk of a PNG, wherever it stands, without decoding the image."""
    found = read_png(path)
    return found.texts, found.warnings
