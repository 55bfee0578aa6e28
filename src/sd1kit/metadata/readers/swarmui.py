"""SwarmUI (StableSwarmUI) pictures: JSON with `sui_image_params` in the PNG `parameters` chunk, in EXIF
UserComment, or (older versions) in the EXIF `Model` tag."""

from __future__ import annotations

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, text_number
from sd1kit.metadata.readers.names import a1111_sampler, a1111_schedule


def _json_of(found: Containers) -> dict | None:
    for key in ("parameters", "exif:UserComment", "exif:Model", "exif:ImageDescription"):
        text = found.texts.get(key, "")
        if "sui_image_params" in text and text.lstrip().startswith("{"):
            data = load_json(text, key)
            if isinstance(data, dict) and isinstance(data.get("sui_image_params"), dict):
                return data
    return None


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def read(found: Containers) -> PictureInfo | None:
    data = _json_of(found)
    if data is None:
        return None
    p = data["sui_image_params"]
    sampler, legacy = a1111_sampler(p.get("sampler") or p.get("comfyuisampler") or p.get("autowebuisampler"))
    layer = p.get("clipstopatlayer")
    w, h = p.get("width"), p.get("height")
    models = data.get("sui_models")
    models = {str(m.get("param")): m for m in models if isinstance(m, dict)} if isinstance(models, list) else {}
    params = {
        "Steps": text_number(p.get("steps")), "Sampler": sampler,
        "Schedule type": a1111_schedule(p.get("scheduler")) or legacy,
        "CFG scale": text_number(p.get("cfgscale")), "Seed": text_number(p.get("seed")),
        "Size": f"{w}x{h}" if w and h else None, "Model hash": _text(models.get("model", {}).get("hash")),
        "Model": p.get("model"), "Clip skip": text_number(-layer) if isinstance(layer, int) and layer < 0 else None,
    }
    names, weights = p.get("loras"), p.get("loraweights")
    names, weights = names if isinstance(names, list) else [], weights if isinstance(weights, list) else []
    loras = [LoraRef(n, weights[i] if i < len(weights) else None) for i, n in enumerate(names)
             if isinstance(n, str) and n]
    app = f"SwarmUI {p['swarm_version']}" if p.get("swarm_version") else "SwarmUI"
    return PictureInfo(found.path, "swarmui", app, str(p.get("prompt") or ""), str(p.get("negativeprompt") or ""),
                       {k: v for k, v in params.items() if v is not None}, loras, dict(found.texts),
                       picture_size=found.size)
