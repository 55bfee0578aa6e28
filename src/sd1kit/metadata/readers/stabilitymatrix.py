"""Stability Matrix's Inference pictures (https://github.com/LykosAI/StabilityMatrix,
StabilityMatrix.Core/Helper/ImageMetadata.cs). PNG: text chunks `parameters` (an A1111 infotext, written from .NET
with `\\r\\n` line ends), `parameters-json` (its GenerationParameters record as JSON: PositivePrompt,
NegativePrompt, Steps, Sampler, CfgScale, Seed, Width, Height, ModelName, ModelHash, ModelVersionId, ...) and
`smproj` (the inference project: {"Version", "ProjectType", "State"}); often the ComfyUI `prompt` graph it ran
too. WebP: the parameters JSON in EXIF ImageDescription, the project in EXIF Software. The infotext is read as
A1111's (line ends made `\\n`, a trailing separator dropped, no `\\r` left in a value); the JSON fills what the
text lacks."""

from __future__ import annotations

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import PictureInfo, text_number as _text_number
from sd1kit.metadata.readers.names import a1111_sampler

JSON_FIELDS = {"Steps": "Steps", "CfgScale": "CFG scale", "Seed": "Seed", "ModelHash": "Model hash",
               "ModelName": "Model"}



def text_number(value) -> str | None:
    """A number (or a number written as text) as infotexts write it; None for anything else."""
    return _text_number(value) if isinstance(value, (int, float, str)) else None


def _json(found: Containers, keys: tuple, marker: str):
    for key in keys:
        text = found.texts.get(key, "")
        if isinstance(text, str) and text.lstrip().startswith("{") and marker in text:
            data = load_json(text, key)
            if isinstance(data, dict) and marker in data:
                return key, data
    return None, None


def _fill(info: PictureInfo, data: dict) -> None:
    """What the parameters JSON says and the infotext does not."""
    params = info.parameters
    if not info.prompt and isinstance(data.get("PositivePrompt"), str):
        info.prompt = data["PositivePrompt"].strip()
    if not info.negative_prompt and isinstance(data.get("NegativePrompt"), str):
        info.negative_prompt = data["NegativePrompt"].strip()
    for key, name in JSON_FIELDS.items():
        value = data.get(key)
        if name not in params and value not in (None, "", 0):
            params[name] = value if isinstance(value, str) else text_number(value)
    if "Sampler" not in params and isinstance(data.get("Sampler"), str) and data["Sampler"]:
        params["Sampler"], schedule = a1111_sampler(data["Sampler"])
        if schedule and "Schedule type" not in params:
            params["Schedule type"] = schedule
    w, h = data.get("Width"), data.get("Height")
    if "Size" not in params and isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        params["Size"] = f"{w}x{h}"


def read(found: Containers) -> PictureInfo | None:
    json_key, data = _json(found, ("parameters-json", "exif:ImageDescription"), "PositivePrompt")
    project_key, project = _json(found, ("smproj", "exif:Software"), "ProjectType")
    if data is None and project is None:
        return None
    from sd1kit.metadata.readers import a1111, comfyui

    text = found.texts.get("parameters")
    if isinstance(text, str) and text.strip() and not text.lstrip().startswith("{"):
        info = a1111.from_infotext(text, found.path, "parameters")
    else:
        info = PictureInfo(path=found.path)
    if data is not None:
        _fill(info, data)
    kind = project.get("ProjectType") if project is not None else None
    info.tool = "stabilitymatrix"
    info.app = f"Stability Matrix ({kind})" if isinstance(kind, str) else "Stability Matrix"
    graph = comfyui.graph_texts(found).get("prompt")
    if graph:
        try:
            nodes = load_json(graph, "the ComfyUI prompt")
        except ValueError as e:
            nodes = info.warnings.append(f"the ComfyUI graph beside it is malformed ({str(e)[:60]}); not kept")
        info.graph = nodes if isinstance(nodes, dict) else None
    if not info.prompt and not info.parameters:
        info.warnings.append(f"Stability Matrix's {json_key or project_key} holds no generation parameters")
    info.raw, info.picture_size = dict(found.texts), found.size
    return info
