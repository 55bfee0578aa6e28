"""InvokeAI pictures: `invokeai_metadata` (3.x and later, JSON), `sd-metadata` (2.x, JSON) and `Dream` (the
1.x/2.x command line: `"prompt [negative]" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms`)."""

from __future__ import annotations

import re
import shlex

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler

MAX_DREAM = 1 << 20
DREAM_FLAGS = {"-s": "steps", "--steps": "steps", "-S": "seed", "--seed": "seed", "-W": "width", "--width": "width",
               "-H": "height", "--height": "height", "-C": "cfg_scale", "--cfg_scale": "cfg_scale",
               "-A": "sampler", "--sampler": "sampler"}


def _negatives(prompt: str) -> tuple[str, str]:
    """InvokeAI 2.x writes negative prompts inside [brackets] in the prompt."""
    negative = [m.strip() for m in re.findall(r"\[([^\[\]]*)\]", prompt) if m.strip()]
    positive = re.sub(r"\[[^\[\]]*\]", "", prompt)
    return re.sub(r"\s{2,}", " ", positive).strip(" ,"), ", ".join(negative)


def _name(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("model_name") or value.get("name")
    return value if isinstance(value, str) and value else None


def _params(meta: dict, sampler_key: str) -> dict:
    sampler, schedule = a1111_sampler(meta.get(sampler_key))
    model = meta.get("model")
    w, h = meta.get("width"), meta.get("height")
    params = {
        "Steps": text_number(meta.get("steps")), "Sampler": sampler, "Schedule type": schedule,
        "CFG scale": text_number(meta.get("cfg_scale")), "Seed": text_number(meta.get("seed")),
        "Size": f"{w}x{h}" if w and h else None,
        "Model hash": model.get("hash") if isinstance(model, dict) and isinstance(model.get("hash"), str) else None,
        "Model": _name(model), "Clip skip": text_number(meta.get("clip_skip") or None),
        "CFG Rescale phi": text_number(meta.get("cfg_rescale_multiplier") or None),
        "Denoising strength": text_number(meta.get("strength")),
    }
    return {k: v for k, v in params.items() if v is not None}


def _loras(meta: dict) -> list[LoraRef]:
    found = []
    items = meta.get("loras")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            name = _name(item.get("lora") or item.get("model"))
            if name:
                found.append(LoraRef(name, item.get("weight"), None))
    return found


def _from_v3(found: Containers, text: str) -> PictureInfo:
    meta = load_json(text, "invokeai_metadata")
    if not isinstance(meta, dict):
        raise ValueError("invokeai_metadata is not a JSON object")
    return PictureInfo(found.path, "invokeai", f"InvokeAI {meta['app_version']}" if meta.get("app_version") else "InvokeAI",
                       str(meta.get("positive_prompt") or ""), str(meta.get("negative_prompt") or ""),
                       _params(meta, "scheduler"), _loras(meta), dict(found.texts), picture_size=found.size)


def _from_v2(found: Containers, text: str) -> PictureInfo:
    meta = load_json(text, "sd-metadata")
    if not isinstance(meta, dict):
        raise ValueError("sd-metadata is not a JSON object")
    image = meta.get("image") or {}
    prompts = image.get("prompt")
    prompt = " ".join(p.get("prompt", "") for p in prompts if isinstance(p, dict)) if isinstance(prompts, list) \
        else str(prompts or "")
    positive, negative = _negatives(prompt)
    params = _params({**image, "model": {"name": meta.get("model_weights"), "hash": meta.get("model_hash")}}, "sampler")
    app = f"InvokeAI {meta['app_version']}" if meta.get("app_version") else "InvokeAI"
    return PictureInfo(found.path, "invokeai", app, positive, negative, params, [], dict(found.texts),
                       picture_size=found.size)


def _from_dream(found: Containers, text: str) -> PictureInfo:
    if len(text) > MAX_DREAM:  # shlex reads a character at a time
        raise ValueError(f"a Dream command line of {len(text) >> 10} KiB")
    words = shlex.split(text, posix=True)
    meta: dict = {}
    prompt_words = []
    i = 0
    while i < len(words):
        if words[i] in DREAM_FLAGS and i + 1 < len(words):
            meta[DREAM_FLAGS[words[i]]] = words[i + 1]
            i += 2
        else:
            prompt_words.append(words[i])
            i += 1
    positive, negative = _negatives(" ".join(prompt_words))
    return PictureInfo(found.path, "invokeai", "InvokeAI (dream)", positive, negative, _params(meta, "sampler"), [],
                       dict(found.texts), picture_size=found.size)


def read(found: Containers) -> PictureInfo | None:
    for key, reader in (("invokeai_metadata", _from_v3), ("sd-metadata", _from_v2), ("Dream", _from_dream)):
        if found.texts.get(key):
            return reader(found, found.texts[key])
    return None
