"""NovelAI pictures (https://novelai.net; NovelAI/novelai-image-metadata): `Software: NovelAI`, `Description` (the
prompt), `Source`, `Comment` (JSON of the settings), in PNG chunks, as gzip'd JSON in the alpha channel, or in the
EXIF of a WebP / JPEG: UserComment holding the JSON of those fields ({"Description", "Software", "Source",
"Comment", ...}), or the settings JSON itself beside ImageDescription (the prompt) and Software. Read as A1111
converts them (`read_info_from_image`): its sampler through A1111's alias table (default Euler a), the picture's
size, and `Clip skip: 2, ENSD: 31337`. V4's per-character prompts (`v4_prompt.caption.char_captions`) have no
A1111 counterpart: they are named in a warning."""

from __future__ import annotations

import json

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler

SETTINGS_KEYS = {"prompt", "uc", "scale", "steps"}  # NovelAI's API names; "uc" is NovelAI's alone
EXIF_SOURCES = ("stealth", "exif:UserComment", "comment")


def _is_settings(data) -> bool:
    return isinstance(data, dict) and SETTINGS_KEYS <= data.keys()


def _from_json(found: Containers, key: str) -> dict | None:
    text = found.texts.get(key, "")
    if not text.lstrip().startswith("{") or not any(m in text for m in ('"Comment"', '"uc"', '"Software"')):
        return None
    data = load_json(text, f"the {key} JSON")
    if isinstance(data, dict) and ("Comment" in data or data.get("Software") == "NovelAI"):
        if "Description" not in data and found.texts.get("exif:ImageDescription"):
            data = {**data, "Description": found.texts["exif:ImageDescription"]}
        return data
    software = found.texts.get("exif:Software", "")
    if key != "stealth" and _is_settings(data) and (software.startswith("NovelAI") or "noise_schedule" in data):
        return {"Comment": data, "Software": software or None,
                "Description": found.texts.get("exif:ImageDescription") or data.get("prompt")}
    return None


def _fields(found: Containers) -> dict | None:
    if found.texts.get("Software") == "NovelAI" or ("Comment" in found.texts and "Description" in found.texts):
        return dict(found.texts)
    for key in EXIF_SOURCES:
        data = _from_json(found, key)
        if data is not None:
            return data
    return None


def _prompts(data: dict, comment: dict, warnings: list[str]) -> tuple[str, str]:
    prompt = data.get("Description") or comment.get("prompt") or ""
    negative = comment.get("uc") or ""
    v4 = comment.get("v4_prompt")
    caption = v4.get("caption") if isinstance(v4, dict) else None
    if isinstance(caption, dict):
        if not prompt and isinstance(caption.get("base_caption"), str):
            prompt = caption["base_caption"]
        characters = caption.get("char_captions")
        if isinstance(characters, list) and characters:
            warnings.append(f"{len(characters)} NovelAI V4 character prompts (v4_prompt.char_captions) have no "
                            "A1111 counterpart; not read")
    return str(prompt).strip(), str(negative).strip()


def read(found: Containers) -> PictureInfo | None:
    data = _fields(found)
    if data is None:
        return None
    comment = data.get("Comment") or {}
    if isinstance(comment, str):
        comment = load_json(comment, "Comment")
    if not isinstance(comment, dict):
        raise ValueError("Comment is not a JSON object")
    sampler, _ = a1111_sampler(comment.get("sampler"))
    if sampler is None or sampler == comment.get("sampler"):
        sampler = "Euler a"  # A1111's default for names it does not know
    w, h = found.size or (comment.get("width"), comment.get("height"))
    params = {
        "Steps": text_number(comment.get("steps")), "Sampler": sampler, "CFG scale": text_number(comment.get("scale")),
        "Seed": text_number(comment.get("seed")), "Size": f"{w}x{h}" if w and h else None,
        "Clip skip": "2", "ENSD": "31337",
    }
    warnings: list[str] = []
    prompt, negative = _prompts(data, comment, warnings)
    return PictureInfo(
        path=found.path, tool="novelai", app=str(data.get("Source") or data.get("Software") or "NovelAI"),
        prompt=prompt, negative_prompt=negative,
        parameters={k: v for k, v in params.items() if v is not None},
        raw={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in found.texts.items()},
        warnings=warnings,
    )
