"""AUTOMATIC1111 / Forge / reForge / SD.Next / Civitai-generator infotexts, wherever they are stored."""

from __future__ import annotations

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.infotext import split_infotext
from sd1kit.metadata.picture import PictureInfo, loras_from_prompt

# where an infotext may be, in the order A1111 (and its stealth extension) looks
SOURCES = ("parameters", "exif:UserComment", "postprocessing", "comment", "stealth", "sidecar")
MAX_INFOTEXT = 1 << 20  # as Pillow's MAX_TEXT_CHUNK, through which A1111 reads PNG infotexts


def _is_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def infotext_of(found: Containers) -> tuple[str, str] | None:
    for key in SOURCES:
        text = found.texts.get(key)
        if text and text.strip() and not _is_json(text):
            return key, text
    return None


def _tool_and_app(params: dict[str, str]) -> tuple[str, str | None]:
    version = params.get("Version")
    app = params.get("App")
    if "Civitai resources" in params or "Civitai metadata" in params:
        return "civitai", version or "Civitai"
    if version and version.lower().startswith("fooocus"):
        return "fooocus", version
    if app:
        return "a1111", f"{app} {version}" if version else app
    return "a1111", version


def from_infotext(text: str, path: str | None = None, source: str = "parameters") -> PictureInfo:
    info = PictureInfo(path=path, raw={source: text})
    if len(text) > MAX_INFOTEXT:
        info.warnings.append(f"the {source} text is {len(text) / (1 << 20):.1f} MiB; only its first "
                             f"{MAX_INFOTEXT >> 20} MiB was read")
        text = text[:MAX_INFOTEXT]
    info.prompt, info.negative_prompt, info.parameters = split_infotext(text)
    info.tool, info.app = _tool_and_app(info.parameters)
    info.loras = loras_from_prompt(info.prompt, info.parameters)
    return info


def read(found: Containers) -> PictureInfo | None:
    hit = infotext_of(found)
    if hit is None:
        return None
    source, text = hit
    info = from_infotext(text, found.path, source)
    info.raw = dict(found.texts)
    return info
