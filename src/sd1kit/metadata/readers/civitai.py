"""Civitai's on-site generator (https://civitai.com; how its site reads the format: civitai/civitai,
src/utils/metadata/automatic.metadata.ts). Its JPEGs carry an A1111 infotext in EXIF UserComment (`UNICODE\\0` +
UTF-16 big-endian), its PNG exports the same text in the eXIf chunk, with Civitai's own keys after A1111's:
`Created Date`, `Civitai resources: [...]` and `Civitai metadata: {...}`, both raw JSON. A resource is
{"type": "checkpoint" | "lora" | "embed" | ..., "weight", "modelVersionId", "modelName", "modelVersionName"}, or
{"air": "urn:air:ECOSYSTEM:TYPE:civitai:MODEL@VERSION", "weight"} (ComfyUI-Image-Saver writes these, with
"versionName"). The infotext is read by the A1111 reader (readers/a1111.py), which calls `split` and `apply`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sd1kit.metadata.infotext import split_infotext
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, as_number

LORA_TYPES = ("lora", "locon", "lycoris", "dora")
CHECKPOINT_TYPES = ("checkpoint", "model")
_AIR = re.compile(r"urn:air:([\w.-]+):([\w.-]+):([\w.-]+):(\d{1,12})(?:@(\d{1,12}))?")
_METADATA = re.compile(r"(?:^|,\s*)Civitai metadata:\s*(?=[{\[])")
_STRUCTURE = re.compile(r'["\\{}\[\]]')
_STAND_IN = '"\\u0000civitai"'


@dataclass
class CivitaiLoraRef(LoraRef):
    """A LoRA named by a Civitai resource: its model version id (the resource's unique id) and version name."""

    version_id: int | None = None
    version_name: str | None = None

    def as_json(self) -> dict:
        return {**super().as_json(), "civitai_version_id": self.version_id, "civitai_version": self.version_name}


@dataclass
class Resource:
    type: str | None
    name: str | None
    version: str | None
    version_id: int | None
    model_id: int | None
    weight: float | None
    air: str | None


def _json_end(line: str, start: int) -> int | None:
    """Where the JSON value starting at `start` ends (brackets counted outside strings), or None."""
    depth, inside, escape_at = 0, False, -2
    for m in _STRUCTURE.finditer(line, start):
        i, ch = m.start(), m.group()
        if inside:
            if i == escape_at + 1:  # the character after a backslash
                continue
            if ch == "\\":
                escape_at = i
            elif ch == '"':
                inside = False
            continue
        if ch == '"':
            inside = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return m.end()
    return None


def split(text: str) -> tuple[str, str, dict[str, str]]:
    """`split_infotext`, with the raw JSON of `Civitai metadata` kept whole (A1111's parser would cut it at its
    first comma)."""
    stripped = text.strip()
    head, newline, last = stripped.rpartition("\n")
    m = _METADATA.search(last)
    end = _json_end(last, m.end()) if m else None
    if end is None:
        return split_infotext(text)
    raw = last[m.end():end]
    prompt, negative, params = split_infotext(head + newline + last[:m.end()] + _STAND_IN + last[end:])
    if params.get("Civitai metadata") == "\0civitai":
        params["Civitai metadata"] = raw
    return prompt, negative, params


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 12 else None


def _resource(item: dict) -> Resource:
    air = item.get("air") if isinstance(item.get("air"), str) else None
    m = _AIR.match(air) if air else None
    kind = item.get("type") if isinstance(item.get("type"), str) else (m.group(2) if m else None)
    version_id = _int(item.get("modelVersionId")) or (int(m.group(5)) if m and m.group(5) else None)
    version = item.get("modelVersionName", item.get("versionName"))
    name = item.get("modelName")
    return Resource(kind.lower() if kind else None, name if isinstance(name, str) and name else None,
                    version if isinstance(version, str) else None, version_id,
                    _int(item.get("modelId")) or (int(m.group(4)) if m else None), as_number(item.get("weight")), air)


def resources(params: dict, warnings: list[str] | None = None) -> list[Resource]:
    """The resources of `Civitai resources`, in order; unreadable ones named in `warnings`."""
    raw = params.get("Civitai resources")
    if not isinstance(raw, str) or not raw.strip():
        return []
    try:
        items = load_json(raw, "Civitai resources")
    except ValueError as e:
        if warnings is not None:
            warnings.append(f"Civitai resources is not readable JSON ({str(e)[:60]}); not read")
        return []
    if not isinstance(items, list):
        items = []
    found = [_resource(item) for item in items if isinstance(item, dict)]
    if warnings is not None and len(found) < len(items):
        warnings.append(f"{len(items) - len(found)} of the Civitai resources are not objects; not read")
    return found


def apply(info: PictureInfo) -> None:
    """The checkpoint's name as `Model` (when the text has none) and the LoRAs with their version ids: from the
    resources when the prompt has no `<lora:...>` tags, else the tags, with the version ids of those whose name
    matches a resource's."""
    meta = info.parameters.get("Civitai metadata")
    if isinstance(meta, str) and meta.strip():
        try:
            load_json(meta, "Civitai metadata")
        except ValueError as e:
            info.warnings.append(f"Civitai metadata is not readable JSON ({str(e)[:60]}); kept as written")
    found = resources(info.parameters, info.warnings)
    checkpoint = next((r for r in found if r.type in CHECKPOINT_TYPES and r.name), None)
    if checkpoint is not None and "Model" not in info.parameters:
        info.parameters["Model"] = checkpoint.name
    loras = [r for r in found if r.type in LORA_TYPES]
    if not loras:
        return
    if not info.loras:
        info.loras = [CivitaiLoraRef(r.name or f"civitai-{r.version_id}", r.weight, None, None, r.version_id,
                                     r.version) for r in loras if r.name or r.version_id]
        missing = [r.name or str(r.version_id) for r in loras if r.weight is None and (r.name or r.version_id)]
        if missing:
            info.warnings.append(f"Civitai resources give no weight for {', '.join(missing)[:120]}")
        return
    by_name = {r.name.lower(): r for r in loras if r.name}
    for i, lora in enumerate(info.loras):
        r = by_name.pop(lora.name.lower(), None)
        if r is not None:
            info.loras[i] = CivitaiLoraRef(lora.name, lora.weight, lora.hash, lora.te_weight, r.version_id, r.version)
    if by_name:
        info.warnings.append(f"Civitai resources name LoRAs the prompt's <lora:> tags do not: "
                             f"{', '.join(r.name for r in by_name.values())[:120]}; the tags were read")
