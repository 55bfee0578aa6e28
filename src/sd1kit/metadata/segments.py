"""The metadata segments of JPEG and WebP files, walked without decoding the image (and without Pillow's open,
which refuses any picture that declares more than ~179 megapixels, metadata and all): JPEG's APP1 Exif and XMP and
its COM comment before the scan (ITU-T T.81 Annex B, Exif 2.3 §4.5.4, XMP part 3 §1.1.3), WebP's EXIF and XMP
chunks (the WebP container specification, RIFF). Segment counts and sizes are bounded (`metadata.limits`)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from sd1kit.errors import BadFileError
from sd1kit.metadata.limits import MAX_SEGMENTS, TextBudget

XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
NO_LENGTH = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI
JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}


@dataclass
class Segments:
    format: str
    size: tuple[int, int] | None = None
    mode: str | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    comment: bytes | None = None
    warnings: list[str] = field(default_factory=list)


def _count(n: int, where: str, what: str) -> None:
    if n > MAX_SEGMENTS:
        raise BadFileError(where, f"the {what} has more than {MAX_SEGMENTS} metadata segments; refused")


def _jpeg_segment(found: Segments, marker: int, data: bytes, budget: TextBudget) -> None:
    if marker in SOF_MARKERS and len(data) >= 6:
        height, width = struct.unpack(">HH", data[1:5])
        found.size, found.mode = (width, height), JPEG_MODES.get(data[5])
    elif marker == 0xE1 and data.startswith(b"Exif\0\0"):
        budget.take(len(data), "the EXIF block")
        found.exif = data if found.exif is None else found.exif + data[6:]  # continued as Pillow joins them
    elif marker == 0xE1 and data.startswith(XMP_APP1):
        budget.take(len(data), "the XMP packet")
        found.xmp = data[len(XMP_APP1):]
    elif marker == 0xFE:
        budget.take(len(data), "the JPEG comment")
        found.comment = data


def read_jpeg(path, budget: TextBudget) -> Segments:
    """Size, mode, EXIF, XMP and comment of a JPEG, from its segments before the first scan."""
    found, count = Segments("JPEG"), 0
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            found.warnings.append("not a JPEG")
            return found
        while True:
            head = f.read(2)
            if len(head) < 2 or head[0] != 0xFF:
                found.warnings.append("the JPEG's segments end early or are damaged")
                return found
            marker = head[1]
            count += 1  # markers and fill bytes alike
            _count(count, str(path), "JPEG")
            if marker == 0xFF:  # a fill byte before the marker
                f.seek(-1, 1)
                continue
            if marker in (0xDA, 0xD9):  # the scan (image data) or the end: no metadata after it
                return found
            if marker in NO_LENGTH:
                continue
            length = f.read(2)
            size = struct.unpack(">H", length)[0] - 2 if len(length) == 2 else 0
            data = f.read(max(size, 0))
            if len(length) < 2 or len(data) < size:
                found.warnings.append("the JPEG is truncated inside a segment")
                return found
            _jpeg_segment(found, marker, data, budget)


def _webp_chunk(found: Segments, kind: bytes, data: bytes) -> None:
    if kind == b"VP8X" and len(data) >= 10:
        found.size = (int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1)
        found.mode = "RGBA" if data[0] & 0x10 else "RGB"
    elif kind == b"VP8L" and found.size is None and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        found.size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        found.mode = "RGBA" if bits >> 28 & 1 else "RGB"
    elif kind == b"VP8 " and found.size is None and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        found.size, found.mode = (width & 0x3FFF, height & 0x3FFF), "RGB"
    elif kind == b"EXIF" and found.exif is None:
        found.exif = data
    elif kind == b"XMP " and found.xmp is None:
        found.xmp = data


def read_webp(path, budget: TextBudget) -> Segments:
    """Size, mode, EXIF and XMP of a WebP, from its RIFF chunks (image chunks skipped, not read)."""
    found, count = Segments("WEBP"), 0
    with open(path, "rb") as f:
        head, end = f.read(12), os.fstat(f.fileno()).st_size
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            found.warnings.append("not a WebP")
            return found
        while len(chunk := f.read(8)) == 8:
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            count += 1
            _count(count, str(path), "WebP")
            start, want = f.tell(), 0
            if kind in (b"EXIF", b"XMP ") and start + size > end:
                found.warnings.append(f"the WebP is truncated inside its {kind.decode().strip()} chunk")
                return found
            if kind in (b"EXIF", b"XMP "):
                budget.take(size, f"the WebP {kind.decode().strip()} chunk")
                want = size
            elif kind in (b"VP8X", b"VP8L", b"VP8 ") and found.size is None:
                want = min(size, 16)  # the header only
            data = f.read(want)
            if len(data) < want:
                found.warnings.append(f"the WebP is truncated inside a {kind.decode('latin-1')} chunk")
                return found
            _webp_chunk(found, kind, data)
            f.seek(start + size + (size & 1))
    return found
