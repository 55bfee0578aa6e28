"""RuinedFooocus pictures (https://github.com/runew0lf/RuinedFooocus, modules/async_worker.py and
shared/pipelines): JSON in the PNG `parameters` chunk with `"software": "RuinedFooocus"` and its own keys -
`Prompt`, `Negative`, `steps`, `cfg`, `width`, `height`, `seed`, `sampler_name`, `scheduler` (ComfyUI's names),
`base_model_name`, `base_model_hash`, `loras` ([[hash, "WEIGHT - NAME"], ...]; older versions a string
"Loras:<NAME:WEIGHT>,..."), `clip_skip`, `denoise`, `start_step` - distinct from Fooocus's own scheme
(readers/fooocus.py). A refiner, a switch step or a start step are named in warnings: A1111's keys cannot say them.
"""

from __future__ import annotations

import re

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, as_number, text_number as _text_number
from sd1kit.metadata.readers.names import a1111_sampler, a1111_schedule

SOURCES = ("parameters", "Comment", "comment", "exif:UserComment")
_OLD_LORA = re.compile(r"<([^<>:]+):([^<>:]+)>")



def text_number(value) -> str | None:
    """A number (or a number written as text) as infotexts write it; None for anything else."""
    return _text_number(value) if isinstance(value, (int, float, str)) else None


def _json_of(found: Containers) -> dict | None:
    for key in SOURCES:
        text = found.texts.get(key, "")
        if isinstance(text, str) and text.lstrip().startswith("{") and "RuinedFooocus" in text:
            data = load_json(text, key)
            software = data.get("software") if isinstance(data, dict) else None
            if isinstance(software, str) and software.startswith("RuinedFooocus"):
                return data
    return None


def _stem(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if name.lower().endswith((".safetensors", ".ckpt", ".pt", ".pth")) else name


def _lora(item, warnings: list[str]) -> LoraRef | None:
    if isinstance(item, list) and len(item) == 2 and isinstance(item[1], str) and " - " in item[1]:
        weight, name = item[1].split(" - ", 1)  # [hash, "0.5 - name.safetensors"]
        return LoraRef(_stem(name.strip()), as_number(weight.strip()), item[0] if isinstance(item[0], str) else None)
    if isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str):  # [name, weight(, hash)]
        return LoraRef(_stem(item[0]), as_number(item[1]), item[2] if len(item) > 2 and isinstance(item[2], str)
                       else None)
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        return LoraRef(_stem(item["name"]), as_number(item.get("weight")),
                       item.get("hash") if isinstance(item.get("hash"), str) else None)
    warnings.append(f"a RuinedFooocus LoRA entry is not readable ({str(item)[:40]}); skipped")
    return None


def _loras(data: dict, warnings: list[str]) -> list[LoraRef]:
    items = data.get("loras")
    if isinstance(items, str):  # "Loras:<name:weight>,<name:weight>"
        return [LoraRef(_stem(n.strip()), as_number(w.strip())) for n, w in _OLD_LORA.findall(items)
                if n.strip() and n.strip() != "None"]
    found = [_lora(item, warnings) for item in items] if isinstance(items, list) else []
    return [lora for lora in found if lora is not None and lora.name and lora.name != "None"]


def _unread(data: dict) -> list[str]:
    notes = []
    refiner = data.get("refiner_model_name")
    if isinstance(refiner, str) and refiner not in ("", "None"):
        notes.append(f"RuinedFooocus used the refiner {refiner[:60]} (switch {data.get('switch')}); not read")
    if isinstance(data.get("start_step"), int) and data["start_step"] > 0:
        notes.append(f"RuinedFooocus started at step {data['start_step']}; Steps is the whole schedule's")
    return notes


def read(found: Containers) -> PictureInfo | None:
    data = _json_of(found)
    if data is None:
        return None
    sampler, legacy = a1111_sampler(data.get("sampler_name"))
    w, h = data.get("width"), data.get("height")
    model = data.get("base_model_name")
    clip_skip, denoise = data.get("clip_skip"), data.get("denoise")
    params = {
        "Steps": text_number(data.get("steps")), "Sampler": sampler,
        "Schedule type": a1111_schedule(data.get("scheduler")) or legacy,
        "CFG scale": text_number(data.get("cfg")), "Seed": text_number(data.get("seed")),
        "Size": f"{w}x{h}" if w and h else None,
        "Model hash": data.get("base_model_hash") if isinstance(data.get("base_model_hash"), str) else None,
        "Model": _stem(model) if isinstance(model, str) and model else None,
        "Denoising strength": text_number(denoise) if as_number(denoise) is not None and as_number(denoise) < 1
        else None,
        "Clip skip": text_number(clip_skip) if isinstance(clip_skip, int) and clip_skip > 1 else None,
    }
    warnings = _unread(data)
    loras = _loras(data, warnings)
    return PictureInfo(found.path, "ruinedfooocus", str(data.get("software")), str(data.get("Prompt") or ""),
                       str(data.get("Negative") or ""), {k: v for k, v in params.items() if v is not None}, loras,
                       dict(found.texts), picture_size=found.size, warnings=warnings)
