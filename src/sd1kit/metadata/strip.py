"""Removing the metadata of a picture: the file's own chunks / segments are copied except the ones that carry text
(PNG tEXt/zTXt/iTXt/eXIf, JPEG APP1/APP13/COM, WebP EXIF/XMP), so the image data stays byte-identical; written
atomically to a new file. Stealth metadata lives in the pixels themselves: a PNG carrying it is re-encoded with
those bits overwritten (`metadata.stealth.clear_stealth`), and the result says so; other formats carrying it are
refused."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from warnings import catch_warnings, simplefilter

from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.formats.atomic import atomic_path
from sd1kit.metadata.limits import MAX_PNG_CHUNKS, MAX_SEGMENTS, STEALTH_MAX_PIXELS
from sd1kit.metadata.png import PNG_SIGNATURE
from sd1kit.metadata.stealth import clear_stealth, stealth_extent

PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}
JPEG_DROP = {0xE1, 0xED, 0xFE}  # APP1 (EXIF, XMP), APP13 (Photoshop IRB), COM
WEBP_DROP = {b"EXIF", b"XMP "}


def _count(n: int, limit: int, where: str, what: str) -> None:
    if n > limit:
        raise Sd1kitError(where, f"the {what} has more than {limit} chunks or segments; not stripped")


def _png(data: bytes, where: str) -> bytes:
    out, pos, n, other = [PNG_SIGNATURE], 8, 0, 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        n, other = n + 1, other + (kind != b"IDAT")
        _count(n, MAX_PNG_CHUNKS, where, "PNG")
        _count(other, MAX_SEGMENTS, where, "PNG")
        end = pos + 12 + length
        if end > len(data):
            raise Sd1kitError(where, "the PNG is truncated; not stripped")
        if kind not in PNG_DROP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    raise Sd1kitError(where, "the PNG has no IEND chunk; not stripped")


def _jpeg(data: bytes, where: str) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise Sd1kitError(where, "not a JPEG")
    out, pos, n = [data[:2]], 2, 0
    while pos + 4 <= len(data):
        n += 1
        _count(n, MAX_SEGMENTS, where, "JPEG")
        if data[pos] != 0xFF:
            raise Sd1kitError(where, "the JPEG's segment structure is broken; not stripped")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the image data and everything after it stay as they are
            out.append(data[pos:])
            return b"".join(out)
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if end > len(data):
            raise Sd1kitError(where, "the JPEG is truncated; not stripped")
        if marker not in JPEG_DROP:
            out.append(data[pos:end])
        pos = end
    raise Sd1kitError(where, "the JPEG has no image data; not stripped")


def _webp(data: bytes, where: str) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Sd1kitError(where, "not a WebP")
    chunks, pos, n = [], 12, 0
    while pos + 8 <= len(data):
        n += 1
        _count(n, MAX_SEGMENTS, where, "WebP")
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        end = pos + 8 + size + (size & 1)
        if end > len(data) + (size & 1):
            raise Sd1kitError(where, "the WebP is truncated; not stripped")
        chunk = bytearray(data[pos:end])
        if kind == b"VP8X":
            chunk[8] &= ~0x0C & 0xFF  # no EXIF (0x08), no XMP (0x04)
        if kind not in WEBP_DROP:
            chunks.append(bytes(chunk))
        pos = end
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass
class Stripped:
    path: Path
    notes: list[str] = field(default_factory=list)  # what else was done or could not be checked
    pixels_changed: bool = False


def _clean_bytes(data: bytes, where: str) -> bytes:
    if data.startswith(PNG_SIGNATURE):
        return _png(data, where)
    if data[:2] == b"\xff\xd8":
        return _jpeg(data, where)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, where)
    raise Sd1kitError(where, "only PNG, JPEG and WebP pictures can be stripped")


def _decoded(clean: bytes, result: Stripped) -> Image.Image | None:
    """The stripped picture decoded, if it could carry stealth metadata and is small enough to decode."""
    if clean[:2] == b"\xff\xd8":
        return None  # JPEG's lossy pixels cannot carry it
    try:
        with catch_warnings():
            simplefilter("ignore")  # Pillow's decompression-bomb warning: the size is checked here
            image = Image.open(io.BytesIO(clean))
        if image.mode not in ("RGB", "RGBA"):
            return None
        if image.width * image.height > STEALTH_MAX_PIXELS:
            result.notes.append(f"not checked for stealth metadata: over {STEALTH_MAX_PIXELS / 1e6:.0f} megapixels")
            return None
        image.load()
        return image
    except Image.DecompressionBombError:
        result.notes.append(f"not checked for stealth metadata: over {STEALTH_MAX_PIXELS / 1e6:.0f} megapixels")
    except (OSError, ValueError, SyntaxError) as e:
        result.notes.append(f"not checked for stealth metadata: the pixels are unreadable ({e.__class__.__name__})")
    return None


def _without_stealth(clean: bytes, where: str, result: Stripped) -> bytes:
    """The stripped picture with its stealth metadata overwritten (a PNG re-encoded), or as it is when it has none."""
    image = _decoded(clean, result)
    if image is None or stealth_extent(image) is None:
        return clean
    if image.format != "PNG":
        raise Sd1kitError(where, f"stealth metadata in the pixels of a {image.format} cannot be stripped without "
                                 "re-encoding it; convert it to PNG first")
    kept = {k: image.info[k] for k in ("icc_profile", "dpi") if k in image.info}
    out, done = clear_stealth(image)
    buffer = io.BytesIO()
    out.save(buffer, "PNG", **kept)
    result.notes.append("stealth metadata overwritten (" + "; ".join(done) + "): pixels re-encoded")
    result.pixels_changed = True
    return buffer.getvalue()


def strip_picture(src: str | os.PathLike, out: str | os.PathLike) -> Stripped:
    """`src` without its metadata (stealth included) written to `out`; what was done besides, in `notes`."""
    src, out = Path(src), Path(out)
    if out.exists() and out.resolve() == src.resolve():
        raise Sd1kitError(out, "the output would replace the input; choose another --out")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise Sd1kitError(src, f"cannot read ({e.strerror})") from None
    result = Stripped(out)
    clean = _without_stealth(_clean_bytes(data, str(src)), str(src), result)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(clean)
    return result

