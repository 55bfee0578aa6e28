"""Draw Things pictures: XMP whose `exif:UserComment` holds JSON (`c` prompt, `uc` negative, `seed`, `steps`,
`scale`, `sampler`, `size`, `model`, `lora`)."""

from __future__ import annotations

import html
import json
import re

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.picture import LoraRef, PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler

_COMMENT = re.compile(r"<exif:UserComment>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.S)


def read(found: Containers) -> PictureInfo | None:
    m = _COMMENT.search(found.texts.get("XML:com.adobe.xmp", ""))
    if m is None:
        return None
    data = json.loads(html.unescape(m.group(1)))
    if not isinstance(data, dict) or "c" not in data:
        return None
    sampler, schedule = a1111_sampler(data.get("sampler"))
    params = {
        "Steps": text_number(data.get("steps")), "Sampler": sampler, "Schedule type": schedule,
        "CFG scale": text_number(data.get("scale")), "Seed": text_number(data.get("seed")),
        "Size": data.get("size"), "Model": str(data["model"]).rsplit(".", 1)[0] if data.get("model") else None,
        "Denoising strength": text_number(data.get("strength")) if data.get("strength") not in (None, 1) else None,
    }
    loras = [LoraRef(str(x.get("file", "")).rsplit(".", 1)[0], x.get("weight")) for x in data.get("lora") or []
             if isinstance(x, dict) and x.get("file")]
    return PictureInfo(found.path, "drawthings", "Draw Things", str(data.get("c") or ""), str(data.get("uc") or ""),
                       {k: v for k, v in params.items() if v is not None}, loras, dict(found.texts),
                       picture_size=found.size)
