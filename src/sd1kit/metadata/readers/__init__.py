"""One reader per tool; the first that recognises a picture's metadata reads it."""

from __future__ import annotations

import os
from dataclasses import replace

from sd1kit.metadata.containers import Containers, read_containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, as_number, text_number
from sd1kit.metadata.readers import (a1111, comfyui, drawthings, fooocus, huggingface, invokeai, novelai,
                                    ruinedfooocus, stabilitymatrix, swarmui)

# order matters: JSON-carrying tools before the plain infotext reader that takes whatever text is left; Stability
# Matrix before ComfyUI (its pictures carry the ComfyUI graph it ran), RuinedFooocus and diffusers JSON before
# Fooocus (whose reader takes JSON by its keys)
READERS = (("swarmui", swarmui.read), ("stabilitymatrix", stabilitymatrix.read), ("comfyui", comfyui.read),
           ("novelai", novelai.read), ("invokeai", invokeai.read), ("ruinedfooocus", ruinedfooocus.read),
           ("diffusers", huggingface.read), ("fooocus", fooocus.read), ("drawthings", drawthings.read),
           ("a1111", a1111.read))
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError, ArithmeticError)


def _value(key, value, warnings: list[str]) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return text_number(value)
    if value is not None:
        warnings.append(f"the {str(key)[:40]} field is not a value ({type(value).__name__}); skipped")
    return None


def _lora(lora, warnings: list[str]) -> LoraRef | None:
    if not isinstance(lora, LoraRef) or not isinstance(lora.name, str) or not lora.name:
        warnings.append(f"a LoRA without a readable name was skipped ({type(getattr(lora, 'name', None)).__name__})")
        return None
    weights = []
    for value in (lora.weight, lora.te_weight):
        weights.append(as_number(value))
        if value is not None and weights[-1] is None:
            warnings.append(f"LoRA {lora.name[:40]}: weight {str(value)[:20]!r} is not a number; not read")
    return replace(lora, weight=weights[0], hash=lora.hash if isinstance(lora.hash, str) else None,
                   te_weight=weights[1])  # a reader's subclass (Civitai's version ids) kept


def checked(info: PictureInfo) -> PictureInfo:
    """The reader's result with the types the rest of sd1kit relies on: a field of the wrong type in a hostile
    picture (a dict for a name, a word for a weight) becomes a warning, never a crash further on."""
    warnings = [w for w in info.warnings if isinstance(w, str)]
    for attr in ("prompt", "negative_prompt"):
        if not isinstance(getattr(info, attr), str):
            warnings.append(f"the {attr.replace('_', ' ')} is not text; not read")
            setattr(info, attr, "")
    params = info.parameters if isinstance(info.parameters, dict) else {}
    info.parameters = {k: v for k, v in ((k, _value(k, v, warnings)) for k, v in params.items())
                       if isinstance(k, str) and v is not None}
    loras = info.loras if isinstance(info.loras, list) else []
    info.loras = [lora for lora in (_lora(x, warnings) for x in loras) if lora is not None]
    info.app = info.app if isinstance(info.app, str) else None
    info.graph = info.graph if isinstance(info.graph, dict) else None
    info.warnings = warnings
    return info


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
            return checked(info)
    tool = "unknown" if found.texts else None
    return PictureInfo(path=found.path, tool=tool, raw=dict(found.texts), picture_size=found.size, warnings=warnings)


def read_picture(path: str | os.PathLike) -> PictureInfo:
    """What a picture's metadata says, whatever wrote it. A damaged file gives warnings (see `warnings`); one past
    the readers' limits (`metadata.limits`: a zTXt bomb, a million chunks) raises BadFileError naming it."""
    return read_found(read_containers(path))


def read_text(text: str, path: str | None = None) -> PictureInfo:
    """A metadata text pasted or read from elsewhere: JSON of a known tool, or an A1111 infotext."""
    found = Containers(path or "<text>")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = load_json(text, "the text")
        except ValueError:
            data = None
        if isinstance(data, dict):
            key = "prompt" if any(isinstance(v, dict) and "class_type" in v for v in data.values()) \
                else "workflow" if isinstance(data.get("nodes"), list) and "links" in data \
                else "invokeai_metadata" if "positive_prompt" in data else "parameters"
            found.texts[key] = text
            return read_found(found)
    found.texts["parameters"] = text
    return read_found(found)
