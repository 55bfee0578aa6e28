"""One reader per tool; the first that recognises a picture's metadata reads it."""

from __future__ import annotations

import json
import os

from sd1kit.metadata.containers import Containers, read_containers
from sd1kit.metadata.picture import PictureInfo
from sd1kit.metadata.readers import a1111, comfyui, drawthings, fooocus, invokeai, novelai, swarmui

# order matters: JSON-carrying tools before the plain infotext reader that takes whatever text is left
READERS = (("swarmui", swarmui.read), ("comfyui", comfyui.read), ("novelai", novelai.read),
           ("invokeai", invokeai.read), ("fooocus", fooocus.read), ("drawthings", drawthings.read),
           ("a1111", a1111.read))
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


def read_found(found: Containers) -> PictureInfo:
    warnings = list(found.warnings)
    for name, reader in READERS:
        try:
            info = reader(found)
        except MALFORMED as e:
            warnings.append(f"{name} metadata is malformed ({e.__class__.__name__}); skipped")
            continue
        if info is not None:
            info.path, info.picture_size = found.path, found.size
            info.warnings = warnings + info.warnings
            return info
    tool = "unknown" if found.texts else None
    return PictureInfo(path=found.path, tool=tool, raw=dict(found.texts), picture_size=found.size, warnings=warnings)


def read_picture(path: str | os.PathLike) -> PictureInfo:
    """What a picture's metadata says, whatever wrote it; never raises on a bad file (see `warnings`)."""
    return read_found(read_containers(path))


def read_text(text: str, path: str | None = None) -> PictureInfo:
    """A metadata text pasted or read from elsewhere: JSON of a known tool, or an A1111 infotext."""
    found = Containers(path or "<text>")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            key = "prompt" if any(isinstance(v, dict) and "class_type" in v for v in data.values()) \
                else "invokeai_metadata" if "positive_prompt" in data else "parameters"
            found.texts[key] = text
            return read_found(found)
    found.texts["parameters"] = text
    return read_found(found)
