"""Where generation metadata lives in picture files (formats.md §8): PNG text chunks of every kind and position
(read by walking the chunks, so that chunks after the image data count and pixels are never decoded), EXIF
UserComment / ImageDescription and the JPEG comment of JPEG and WebP, XMP, the alpha- or RGB-channel "stealth"
metadata, and a sidecar `.txt` beside the picture. Reading never changes the file."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from warnings import catch_warnings, simplefilter

from PIL import Image

from sd1kit.metadata.exif import EXIF_IFD, USER_COMMENT, decode_user_comment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
MAX_TEXT = 64 << 20  # one text chunk, decompressed; larger ones are reported and skipped
EXIF_DESCRIPTION, EXIF_MODEL = 0x010E, 0x0110
STEALTH_SIGNATURES = {"stealth_pnginfo": False, "stealth_pngcomp": True,
                      "stealth_rgbinfo": False, "stealth_rgbcomp": True}  # -> gzip-compressed


@dataclass
class Containers:
    """The metadata texts of one picture file, by where they were found (PNG chunk keyword, "exif:UserComment",
    "exif:ImageDescription", "exif:Model", "comment", "XML:com.adobe.xmp", "stealth", "sidecar")."""

    path: str
    format: str | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _latin1(data: bytes) -> str:
    return data.decode("latin-1")


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, MAX_TEXT + 1)
    if len(out) > MAX_TEXT:
        raise ValueError(f"decompresses to more than {MAX_TEXT >> 20} MiB")
    return out


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str]:
    key, _, rest = data.partition(b"\0")
    if kind == b"tEXt":
        return _latin1(key), _latin1(rest)
    if kind == b"zTXt":
        if rest[:1] != b"\0":
            raise ValueError("unknown compression method")
        return _latin1(key), _latin1(_inflate(rest[1:]))
    compressed, method, rest = rest[0:1], rest[1:2], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if compressed == b"\1":
        if method != b"\0":
            raise ValueError("unknown compression method")
        text = _inflate(text)
    return _latin1(key), text.decode("utf-8", errors="replace")


def png_texts(path: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """Every tEXt / zTXt / iTXt chunk of a PNG, wherever it stands, without decoding the image."""
    texts: dict[str, str] = {}
    warnings: list[str] = []
    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            return texts, ["not a PNG"]
        while True:
            head = f.read(8)
            if len(head) < 8:
                warnings.append("the PNG is truncated (no IEND chunk)")
                break
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                break
            if kind not in TEXT_CHUNKS:
                here = f.tell()
                f.seek(length + 4, os.SEEK_CUR)
                if f.tell() > here + length + 4 or f.tell() > os.fstat(f.fileno()).st_size:
                    warnings.append(f"the PNG is truncated inside a {kind.decode('latin-1')} chunk")
                    break
                continue
            if length > MAX_TEXT:
                warnings.append(f"a {length >> 20} MiB {kind.decode()} chunk was skipped (over {MAX_TEXT >> 20} MiB)")
                f.seek(length + 4, os.SEEK_CUR)
                continue
            data = f.read(length)
            f.read(4)  # CRC: a damaged chunk is still worth reading
            if len(data) < length:
                warnings.append(f"the PNG is truncated inside a {kind.decode()} chunk")
                break
            try:
                key, text = _text_chunk(kind, data)
            except (ValueError, zlib.error, IndexError) as e:
                warnings.append(f"an unreadable {kind.decode()} chunk was skipped ({e})")
                continue
            texts.setdefault(key, text)
    return texts, warnings


def _exif_texts(image: Image.Image, texts: dict[str, str], warnings: list[str]) -> None:
    try:
        exif = image.getexif()
        comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception as e:  # noqa: BLE001 - any failure inside Pillow's EXIF parser means the same
        warnings.append(f"the EXIF block is unreadable ({e.__class__.__name__})")
        return
    if comment:
        texts["exif:UserComment"] = decode_user_comment(comment)
    for tag, name in ((EXIF_DESCRIPTION, "exif:ImageDescription"), (EXIF_MODEL, "exif:Model")):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and value.strip("\0 "):
            texts[name] = value.rstrip("\0")


def _bits_to_bytes(bits) -> bytes:
    import numpy as np

    usable = len(bits) // 8 * 8
    return np.packbits(bits[:usable]).tobytes()


def read_stealth(image: Image.Image) -> str | None:
    """A1111's stealth-pnginfo extension / NovelAI: a signature, a 32-bit bit count and the text (gzip for the
    *comp kinds) in the least significant bits of the alpha channel (or of R, G, B), column by column."""
    import numpy as np

    if image.mode not in ("RGBA", "RGB"):
        return None
    pixels = np.asarray(image)
    columns = pixels.transpose(1, 0, 2)  # x outer, y inner: the order the writers use
    sources = [("alpha", columns[..., 3].reshape(-1))] if image.mode == "RGBA" else []
    sources.append(("rgb", columns[..., :3].reshape(-1)))
    for kind, channel in sources:
        bits = channel[: 8 * 15] & 1
        signature = _bits_to_bytes(bits).decode("latin-1")
        if signature not in STEALTH_SIGNATURES or (kind == "alpha") != ("png" in signature):
            continue
        length = int.from_bytes(_bits_to_bytes(channel[120:152] & 1), "big")
        if length <= 0 or 152 + length > len(channel):
            return None
        data = _bits_to_bytes(channel[152:152 + length] & 1)
        try:
            if STEALTH_SIGNATURES[signature]:
                data = gzip.decompress(data)
            return data.decode("utf-8", errors="replace")
        except (OSError, EOFError, zlib.error):
            return None
    return None


def _png_size(path) -> tuple[int, int] | None:
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) == 24 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _open_picture(path, found: Containers, stealth: bool) -> None:
    with Image.open(path) as image:
        found.format, found.size, found.mode = image.format, image.size, image.mode
        if image.format != "PNG":
            for key in ("comment", "parameters", "prompt", "workflow", "XML:com.adobe.xmp"):
                value = image.info.get(key)
                if isinstance(value, bytes):
                    value = value.decode("utf-8", errors="replace")
                if isinstance(value, str) and value:
                    found.texts[key] = value
            _exif_texts(image, found.texts, found.warnings)
        xmp = image.info.get("xmp")
        if xmp and "XML:com.adobe.xmp" not in found.texts:
            found.texts["XML:com.adobe.xmp"] = xmp.decode("utf-8", errors="replace") \
                if isinstance(xmp, bytes) else str(xmp)
        if stealth and not found.texts and image.mode in ("RGBA", "RGB"):
            image.load()
            text = read_stealth(image)
            if text:
                found.texts["stealth"] = text


def read_containers(path: str | os.PathLike, stealth: bool = True, sidecar: bool = True) -> Containers:
    """All metadata texts of a picture. Unreadable parts become warnings, never exceptions."""
    found = Containers(str(path))
    with open(path, "rb") as f:
        is_png = f.read(8) == PNG_SIGNATURE
    if is_png:  # chunks are walked here: Pillow refuses big text chunks and misses those after the image
        found.texts, found.warnings = png_texts(path)
        found.format, found.size = "PNG", _png_size(path)
    try:
        with catch_warnings(record=True) as caught:  # Pillow warns about damaged blocks; they become ours
            simplefilter("always")
            _open_picture(path, found, stealth)
        found.warnings += [str(w.message) for w in caught if str(w.message) not in found.warnings]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        if not found.texts:
            found.warnings.append(f"not a readable picture ({e.__class__.__name__}: {e})")
    side = Path(path).with_suffix(".txt")
    if sidecar and side.is_file() and side.stat().st_size <= MAX_TEXT:
        found.texts["sidecar"] = side.read_text(encoding="utf-8", errors="replace")
    return found
