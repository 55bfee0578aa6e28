"""Where generation metadata lives in picture files (formats.md §8): PNG text chunks of every kind and position
(read by walking the chunks, so that chunks after the image data count and pixels are never decoded), EXIF
UserComment / ImageDescription / Make / Model / Software of JPEG, WebP and PNG (eXIf) pictures (ComfyUI's
SaveAnimatedWEBP writes `prompt:{...}` into Model and `workflow:{...}` into Make; Stability Matrix its project
into Software), the JPEG comment, XMP, the alpha- or RGB-channel "stealth" metadata, and a sidecar `.txt` beside
the picture. Reading never changes the file.

Everything read from one picture shares one budget (`metadata.limits`): a picture whose texts would pass it, or
whose container is absurd (a million chunks), is refused with one line (`BadFileError`); stealth metadata is looked
for only in pictures of at most `STEALTH_MAX_PIXELS`, the only case that decodes pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from warnings import catch_warnings, simplefilter

from PIL import Image

from sd1kit.errors import BadFileError
from sd1kit.metadata.exif import EXIF_IFD, USER_COMMENT, decode_user_comment
from sd1kit.metadata.limits import STEALTH_MAX_PIXELS, TextBudget
from sd1kit.metadata.png import PNG_SIGNATURE, TEXT_CHUNKS, png_texts, read_png
from sd1kit.metadata.segments import Segments, read_jpeg, read_webp
from sd1kit.metadata.stealth import STEALTH_SIGNATURES, read_stealth

__all__ = ["Containers", "PNG_SIGNATURE", "STEALTH_SIGNATURES", "TEXT_CHUNKS", "png_texts", "read_containers",
           "read_stealth"]
EXIF_DESCRIPTION, EXIF_MAKE, EXIF_MODEL, EXIF_SOFTWARE = 0x010E, 0x010F, 0x0110, 0x0131
EXIF_STRINGS = ((EXIF_DESCRIPTION, "exif:ImageDescription"), (EXIF_MAKE, "exif:Make"), (EXIF_MODEL, "exif:Model"),
                (EXIF_SOFTWARE, "exif:Software"))
TAIL = 1 << 16  # bytes at a JPEG's end where its EOI marker is looked for
PILLOW_KEYS = ("comment", "parameters", "prompt", "workflow", "XML:com.adobe.xmp")


@dataclass
class Containers:
    """The metadata texts of one picture file, by where they were found (PNG chunk keyword, "exif:UserComment",
    "exif:ImageDescription", "exif:Make", "exif:Model", "exif:Software", "comment", "XML:com.adobe.xmp", "stealth",
    "sidecar")."""

    path: str
    format: str | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) and value else None


def _exif_texts(data: bytes, texts: dict[str, str], warnings: list[str]) -> None:
    """UserComment and the string tags of IFD0 (EXIF_STRINGS) of an EXIF block (Pillow's parser, on the bytes
    alone)."""
    try:
        exif = Image.Exif()
        exif.load(data)
        comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception as e:  # noqa: BLE001 - any failure inside Pillow's EXIF parser means the same
        warnings.append(f"the EXIF block is unreadable ({e.__class__.__name__})")
        return
    if comment and isinstance(comment, (bytes, str)):
        texts["exif:UserComment"] = decode_user_comment(comment)
    for tag, name in EXIF_STRINGS:
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and value.strip("\0 "):
            texts[name] = value.rstrip("\0")


def _exif_block(data: bytes, found: Containers) -> None:
    with catch_warnings(record=True) as caught:  # Pillow warns about damaged blocks; they become ours
        simplefilter("always")
        texts: dict[str, str] = {}
        _exif_texts(data, texts, found.warnings)
    for key, value in texts.items():
        found.texts.setdefault(key, value)
    found.warnings += [str(w.message) for w in caught if str(w.message) not in found.warnings]


def _from_segments(segments: Segments, found: Containers) -> None:
    found.format, found.size, found.mode = segments.format, segments.size, segments.mode
    found.warnings += segments.warnings
    if _text(segments.comment):
        found.texts["comment"] = _text(segments.comment)
    if segments.exif:
        _exif_block(segments.exif, found)
    if _text(segments.xmp):
        found.texts["XML:com.adobe.xmp"] = _text(segments.xmp)


def _from_pillow(path, found: Containers, budget: TextBudget) -> None:
    """Other formats (GIF, TIFF, ...): what Pillow's header parser puts in `info`."""
    with Image.open(path) as image:
        found.format, found.size, found.mode = image.format, image.size, image.mode
        for key in (*PILLOW_KEYS, "xmp"):
            value = _text(image.info.get(key))
            if value:
                budget.take(len(value), f"the {key} text")
                found.texts.setdefault("XML:com.adobe.xmp" if key == "xmp" else key, value)
        exif = image.info.get("exif")
        if isinstance(exif, bytes):
            _exif_texts(exif, found.texts, found.warnings)


def _stealth(path, found: Containers, budget: TextBudget) -> None:
    """Stealth metadata, from the decoded pixels of a picture small enough to decode."""
    width, height = found.size or (0, 0)
    if width * height > STEALTH_MAX_PIXELS:
        found.warnings.append(f"stealth metadata (in the pixels) was not looked for: the picture has "
                              f"{width * height / 1e6:.0f} megapixels, over {STEALTH_MAX_PIXELS / 1e6:.0f}")
        return
    try:
        with Image.open(path) as image:
            if image.width * image.height > STEALTH_MAX_PIXELS or image.mode not in ("RGBA", "RGB"):
                return
            image.load()
            text = read_stealth(image, budget)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        found.warnings.append(f"the pixels are unreadable ({e.__class__.__name__}); no stealth metadata read")
        return
    if text:
        found.texts["stealth"] = text


def _read(path, found: Containers, budget: TextBudget, head: bytes) -> None:
    if head.startswith(PNG_SIGNATURE):  # chunks are walked here: Pillow refuses big text chunks and misses those
        png = read_png(path, budget)      # after the image
        found.format, found.size, found.mode = "PNG", png.size, png.mode
        found.texts, found.warnings = png.texts, png.warnings
        if png.exif:
            exif = png.exif if png.exif.startswith(b"Exif\0\0") else b"Exif\0\0" + png.exif
            _exif_block(exif, found)
    elif head.startswith(b"\xff\xd8"):
        _from_segments(read_jpeg(path, budget), found)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        _from_segments(read_webp(path, budget), found)
    else:
        try:
            with catch_warnings(record=True) as caught:
                simplefilter("always")
                _from_pillow(path, found, budget)
            found.warnings += [str(w.message) for w in caught if str(w.message) not in found.warnings]
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            found.warnings.append(f"not a readable picture ({e.__class__.__name__}: {e})")


def _ends_whole(f, found: Containers, head: bytes) -> None:
    """A JPEG has its EOI marker near its end (entropy-coded data never holds FF D9; data some writers append after
    it is allowed for), a WebP is as long as its RIFF header says: a file cut short in its image data, where the
    metadata readers do not look, is named in a warning."""
    size = os.fstat(f.fileno()).st_size
    if head.startswith(b"\xff\xd8"):
        f.seek(max(size - TAIL, 0))
        if b"\xff\xd9" not in f.read(TAIL):
            found.warnings.append("the JPEG does not end with its end-of-image marker: the file is cut short")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP" and int.from_bytes(head[4:8], "little") + 8 > size:
        found.warnings.append("the WebP is shorter than its RIFF header says: the file is cut short")


def _sidecar(path, found: Containers, budget: TextBudget) -> None:
    side = Path(path).with_suffix(".txt")
    if not side.is_file():
        return
    size = side.stat().st_size
    if size > budget.left:
        found.warnings.append(f"the sidecar {side.name} ({size >> 20} MiB) was not read: over the metadata budget")
        return
    with open(side, "rb") as f:
        text = f.read(budget.left + 1).decode("utf-8", errors="replace")
    budget.take(len(text), "the sidecar")
    found.texts["sidecar"] = text


def read_containers(path: str | os.PathLike, stealth: bool = True, sidecar: bool = True) -> Containers:
    """All metadata texts of a picture. Unreadable parts become warnings; a picture past the readers' limits
    (`metadata.limits`) raises BadFileError naming it."""
    found, budget = Containers(str(path)), TextBudget(path)
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            _ends_whole(f, found, head)
        _read(path, found, budget, head)
        if stealth and not found.texts and found.mode in ("RGBA", "RGB") and found.format != "JPEG":
            _stealth(path, found, budget)  # JPEG's lossy pixels cannot carry it
        if sidecar:
            _sidecar(path, found, budget)
    except OSError as e:
        raise BadFileError(path, f"cannot read ({e.strerror or e.__class__.__name__})") from None
    return found
