"""Infotext in JPEG / WebP: EXIF UserComment (tag 0x9286 in the Exif IFD), as A1111 writes it with piexif:
an 8-byte charset prefix, then the text (`UNICODE\\0` + UTF-16 big-endian)."""

from __future__ import annotations

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
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = user_comment_bytes(text)
    return exif.tobytes()


def read_user_comment(image: Image.Image) -> str | None:
    raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    return decode_user_comment(raw) if raw else None
