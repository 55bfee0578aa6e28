"""Removing the metadata of a picture without touching its pixels: the file's own chunks / segments are copied
except the ones that carry text (PNG tEXt/zTXt/iTXt/eXIf, JPEG APP1/APP13/COM, WebP EXIF/XMP). No re-encoding, so
the image data stays byte-identical; written atomically to a new file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.formats.atomic import atomic_path
from sd1kit.metadata.containers import PNG_SIGNATURE

PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}
JPEG_DROP = {0xE1, 0xED, 0xFE}  # APP1 (EXIF, XMP), APP13 (Photoshop IRB), COM
WEBP_DROP = {b"EXIF", b"XMP "}


def _png(data: bytes, where: str) -> bytes:
    out, pos = [PNG_SIGNATURE], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
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
    out, pos = [data[:2]], 2
    while pos + 4 <= len(data):
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
    chunks, pos = [], 12
    while pos + 8 <= len(data):
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


def strip_metadata(src: str | os.PathLike, out: str | os.PathLike) -> Path:
    src, out = Path(src), Path(out)
    if out.exists() and out.resolve() == src.resolve():
        raise Sd1kitError(out, "the output would replace the input; choose another --out")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise Sd1kitError(src, f"cannot read ({e.strerror})") from None
    if data.startswith(PNG_SIGNATURE):
        clean = _png(data, str(src))
    elif data[:2] == b"\xff\xd8":
        clean = _jpeg(data, str(src))
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        clean = _webp(data, str(src))
    else:
        raise Sd1kitError(src, "only PNG, JPEG and WebP pictures can be stripped")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(clean)
    return out
