"""Infotext in JPEG / WebP: EXIF UserComment (tag 0x9286 in the Exif IFD), as A1111 writes it with piexif:
an 8-byte charset prefix, then the text (`UNICODE\\0` + UTF-16 big-endian)."""

from __future__ import annotations

import struct

from PIL import Image

EXIF_IFD, USER_COMMENT = 0x8769, 0x9286
PREFIXES = {b"UNICODE\0": "utf-16-be", b"ASCII\0\0\0": "ascii", b"JIS\0\0\0\0\0": "shift_jis"}


def user_comment_bytes(text: str) -> bytes:
    return b"UNICODE\0" + text.encode("utf-16-be")


def decode_user_comment(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    prefix, body = raw[:8], raw[8:]
    encoding = PREFIXES.get(prefix)
    if encoding == "utf-16-be" and body[:2] == b"\xff\xfe":  # a writer that put a little-endian BOM
        return body[2:].decode("utf-16-le", errors="ignore")
    if encoding:
        return body.decode(encoding, errors="ignore")
    return (body if prefix == b"\0" * 8 else raw).decode("utf-8", errors="ignore")


def exif_with_comment(text: str) -> bytes:
    """The EXIF block A1111 writes through piexif: big-endian TIFF, IFD0 pointing to an Exif IFD whose only entry
    is UserComment with type UNDEFINED (7). (Pillow's own writer would give it type BYTE, which piexif-based
    readers such as sd-prompt-reader do not take for a comment.)"""
    comment = user_comment_bytes(text)
    ifd0 = struct.pack(">H", 1) + struct.pack(">HHII", EXIF_IFD, 4, 1, 26) + struct.pack(">I", 0)
    exif_ifd = struct.pack(">H", 1) + struct.pack(">HHII", USER_COMMENT, 7, len(comment), 44) + struct.pack(">I", 0)
    return b"Exif\0\0" + b"MM\0*" + struct.pack(">I", 8) + ifd0 + exif_ifd + comment


def read_user_comment(image: Image.Image) -> str | None:
    raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    return decode_user_comment(raw) if raw else None
