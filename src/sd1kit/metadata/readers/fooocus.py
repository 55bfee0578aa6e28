"""Fooocus pictures in its own scheme: JSON in the PNG `parameters` chunk (with `fooocus_scheme`), in an older
`Comment` chunk, or in the JPEG/WebP comment. (Its "a1111" scheme is an ordinary infotext.)"""

from __future__ import annotations

import re

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, as_number, text_number
from sd1kit.metadata.readers.names import a1111_sampler, a1111_schedule


def _json_of(found: Containers) -> dict | None:
    for key in ("parameters", "Comment", "comment", "exif:UserComment"):
        text = found.texts.get(key, "")
        if text.lstrip().startswith("{"):
            data = load_json(text, key)
            if isinstance(data, dict) and (found.texts.get("fooocus_scheme") == "fooocus"
                                           or data.get("metadata_scheme") == "fooocus"
                                           or str(data.get("version", "")).startswith("Fooocus")
                                           or {"base_model", "guidance_scale"} <= data.keys()):
                return data
    return None


def _loras(data: dict) -> list[LoraRef]:
    found = []
    items = data.get("loras")
    for item in items if isinstance(items, list) else []:  # [[name, weight, hash], ...]
        if isinstance(item, list) and item and isinstance(item[0], str):
            found.append(LoraRef(item[0].rsplit(".", 1)[0], item[1] if len(item) > 1 else None,
                                 item[2] if len(item) > 2 and isinstance(item[2], str) else None))
    for key, value in data.items():  # older: "lora_combined_1": "name.safetensors : 0.5"
        if key.startswith("lora_combined_") and isinstance(value, str) and " : " in value:
            name, weight = value.rsplit(" : ", 1)
            number = as_number(weight) if re.match(r"^-?[\d.]+$", weight) else None
            found.append(LoraRef(name.rsplit(".", 1)[0], number))
    return found


def read(found: Containers) -> PictureInfo | None:
    data = _json_of(found)
    if data is None:
        return None
    sampler, _ = a1111_sampler(data.get("sampler"))
    size = data.get("resolution")
    w, h = (data.get("width"), data.get("height"))
    if isinstance(size, str):
        numbers = re.findall(r"\d+", size)
        if len(numbers) == 2:
            w, h = numbers
    params = {
        "Steps": text_number(data.get("steps")), "Sampler": sampler,
        "Schedule type": a1111_schedule(data.get("scheduler")),
        "CFG scale": text_number(data.get("guidance_scale", data.get("cfg"))), "Seed": text_number(data.get("seed")),
        "Size": f"{w}x{h}" if w and h else None, "Model hash": data.get("base_model_hash"),
        "Model": data.get("base_model"),
    }
    return PictureInfo(found.path, "fooocus", str(data.get("version") or "Fooocus"), str(data.get("prompt") or ""),
                       str(data.get("negative_prompt") or ""), {k: v for k, v in params.items() if v is not None},
                       _loras(data), dict(found.texts), picture_size=found.size)
