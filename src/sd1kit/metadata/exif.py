"""Infotext in JPEG / WebP: EXIF UserComment (tag 0x9286 in the Exif IFD; Exif 2.32 §4.6.5, "UserComment"): an
8-byte charset prefix, then the text. A1111 writes `UNICODE\\0` + UTF-16 big-endian through piexif; SwarmUI writes
`UNICODE\\0` + UTF-16 *little*-endian through ImageSharp (`ExifEncodedStringHelpers`: `Encoding.Unicode`); some
writers put UTF-8 after `UNICODE\\0` or `ASCII\\0\\0\\0`. The byte order is read from a byte-order mark, else from
where the zero bytes of the text's ASCII characters fall (high byte first: even offsets)."""

from __future__ import annotations

import struct

from PIL import Image

EXIF_IFD, USER_COMMENT = 0x8769, 0x9286
PREFIXES = {b"UNICODE\0": "utf-16", b"ASCII\0\0\0": "ascii", b"JIS\0\0\0\0\0": "shift_jis"}
SAMPLE = 4096  # bytes looked at to tell the UTF-16 byte order


def user_comment_bytes(text: str) -> bytes:
    return b"UNICODE\0" + text.encode("utf-16-be")


def utf16_order(body: bytes) -> str:
    """"utf-16-be", "utf-16-le", or "utf-8" for a `UNICODE` body that holds no UTF-16 at all (no zero byte, valid
    UTF-8: a writer that ignored the prefix's meaning). A tie (text without ASCII) is big-endian, as the Exif
    standard's readers (piexif) assume."""
    if body[:2] == b"\xfe\xff":
        return "utf-16-be"
    if body[:2] == b"\xff\xfe":
        return "utf-16-le"
    sample = body[:SAMPLE]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if even == odd == 0:
        try:
            body.decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError:
            pass
    return "utf-16-le" if odd > even else "utf-16-be"


def decode_user_comment(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    prefix, body = raw[:8], raw[8:]
    encoding = PREFIXES.get(prefix)
    if encoding == "utf-16":
        encoding = utf16_order(body)
        if encoding != "utf-8" and body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            body = body[2:]
        if encoding != "utf-8" and len(body) % 2:
            body = body[:-1]  # a writer's odd trailing byte (a NUL terminator) is not half a character
        return body.decode(encoding, errors="ignore").rstrip("\0")
    if encoding == "ascii":  # ASCII is a subset of UTF-8; writers that declare it often put UTF-8 there
        return body.decode("utf-8", errors="replace").rstrip("\0")
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
