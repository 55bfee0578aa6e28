"""Draw Things pictures: XMP whose `exif:UserComment` holds JSON (`c` prompt, `uc` negative, `seed`, `steps`,
`scale`, `sampler`, `size`, `model`, `lora`)."""

from __future__ import annotations

import html

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler


def user_comment(xmp: str) -> str | None:
    """What `<exif:UserComment>.*?<rdf:li[^>]*>(.*?)</rdf:li>` (re.S) captures, found with four `find`s: the
    first UserComment's first `<rdf:li ...>` decides (the regex, trying every later one, is quadratic)."""
    at = xmp.find("<exif:UserComment>")
    item = xmp.find("<rdf:li", at + 18) if at >= 0 else -1
    opened = xmp.find(">", item + 7) if item >= 0 else -1
    closed = xmp.find("</rdf:li>", opened + 1) if opened >= 0 else -1
    return xmp[opened + 1:closed] if closed >= 0 else None


def _loras(data: dict) -> list[LoraRef]:
    items = data.get("lora")
    items = [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []
    return [LoraRef(x["file"].rsplit(".", 1)[0], x.get("weight"))
            for x in items if isinstance(x.get("file"), str) and x["file"]]


def read(found: Containers) -> PictureInfo | None:
    comment = user_comment(found.texts.get("XML:com.adobe.xmp", ""))
    if comment is None:
        return None
    data = load_json(html.unescape(comment), "the Draw Things comment")
    if not isinstance(data, dict) or "c" not in data:
        return None
    sampler, schedule = a1111_sampler(data.get("sampler"))
    params = {
        "Steps": text_number(data.get("steps")), "Sampler": sampler, "Schedule type": schedule,
        "CFG scale": text_number(data.get("scale")), "Seed": text_number(data.get("seed")),
        "Size": data.get("size"), "Model": str(data["model"]).rsplit(".", 1)[0] if data.get("model") else None,
        "Denoising strength": text_number(data.get("strength")) if data.get("strength") not in (None, 1) else None,
    }
    return PictureInfo(found.path, "drawthings", "Draw Things", str(data.get("c") or ""), str(data.get("uc") or ""),
                       {k: v for k, v in params.items() if v is not None}, _loras(data), dict(found.texts),
                       picture_size=found.size)
