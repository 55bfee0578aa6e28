"""NovelAI pictures: `Software: NovelAI`, `Description` (the prompt), `Source`, `Comment` (JSON of the settings),
in PNG chunks or gzip'd JSON in the alpha channel; read as A1111 converts them (`read_info_from_image`):
its sampler through A1111's alias table (default Euler a), the picture's size, and `Clip skip: 2, ENSD: 31337`."""

from __future__ import annotations

import json

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler


def _fields(found: Containers) -> dict | None:
    if found.texts.get("Software") == "NovelAI" or ("Comment" in found.texts and "Description" in found.texts):
        return dict(found.texts)
    stealth = found.texts.get("stealth", "")
    if stealth.lstrip().startswith("{"):
        data = load_json(stealth, "the stealth JSON")
        if isinstance(data, dict) and ("Comment" in data or data.get("Software") == "NovelAI"):
            return data
    return None


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
    return PictureInfo(
        path=found.path, tool="novelai", app=str(data.get("Source") or "NovelAI"),
        prompt=str(data.get("Description") or comment.get("prompt") or "").strip(),
        negative_prompt=str(comment.get("uc") or "").strip(),
        parameters={k: v for k, v in params.items() if v is not None},
        raw={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in found.texts.items()},
    )
