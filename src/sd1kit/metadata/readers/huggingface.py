"""Pictures from Hugging Face Spaces and other diffusers-based demos (https://huggingface.co/spaces; the argument
names are those of diffusers' StableDiffusionPipeline.__call__, https://github.com/huggingface/diffusers). Gradio
keeps a PIL image's PNG text chunks when it saves it, so a Space's metadata is whatever its code put there: an
A1111 infotext in `parameters` (e.g. the stablepy-based DiffuseCraft Spaces; read by readers/a1111.py), or a JSON
blob of the pipeline call - `prompt`, `negative_prompt`, `num_inference_steps`, `guidance_scale`, `seed`, `width`,
`height`, the model id and the scheduler's class name - in `parameters`, `metadata`, `generation_data` or a
comment, read here. Scheduler classes are named in A1111's terms where one matches (DPMSolverMultistepScheduler
with use_karras_sigmas is DPM++ 2M Karras); the tool is "diffusers", the Space named where the JSON says."""

from __future__ import annotations

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.limits import load_json
from sd1kit.metadata.picture import LoraRef, PictureInfo, as_number, text_number as _text_number

SOURCES = ("parameters", "metadata", "generation_data", "generation_params", "Comment", "comment",
           "exif:UserComment")
MARKER = "num_inference_steps"  # diffusers' own name (Fooocus' JSON, with prompt and guidance_scale, says steps)
MODEL_KEYS = ("model", "model_id", "model_name", "base_model", "pretrained_model_name_or_path", "checkpoint")
APP_KEYS = ("space_id", "space", "app", "software", "generator")
SCHEDULERS = {  # diffusers scheduler class -> A1111 sampler
    "EulerDiscreteScheduler": "Euler", "EulerAncestralDiscreteScheduler": "Euler a", "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS", "LMSDiscreteScheduler": "LMS", "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2", "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverMultistepScheduler": "DPM++ 2M", "UniPCMultistepScheduler": "UniPC", "LCMScheduler": "LCM",
    "DPMSolverSDEScheduler": "DPM++ SDE", "DEISMultistepScheduler": "DEIS",
}



def text_number(value) -> str | None:
    """A number (or a number written as text) as infotexts write it; None for anything else."""
    return _text_number(value) if isinstance(value, (int, float, str)) else None


def _json_of(found: Containers) -> dict | None:
    for key in SOURCES:
        text = found.texts.get(key, "")
        if isinstance(text, str) and text.lstrip().startswith("{") and MARKER in text:
            data = load_json(text, key)
            if isinstance(data, dict) and "prompt" in data and MARKER in data:
                return data
    return None


def _sampler(data: dict) -> tuple[str | None, str | None]:
    name = data.get("scheduler", data.get("sampler"))
    if isinstance(name, dict):  # a scheduler config
        name = name.get("_class_name")
    if not isinstance(name, str) or not name:
        return None, None
    sampler = SCHEDULERS.get(name)
    if sampler is None:
        return name, None  # kept as written
    algorithm = str(data.get("algorithm_type", ""))
    if sampler == "DPM++ 2M" and algorithm.startswith("sde"):
        sampler = "DPM++ 2M SDE"
    karras = data.get("use_karras_sigmas") is True or "karras" in str(data.get("scheduler_type", "")).lower()
    return sampler, "Karras" if karras else None


def _loras(data: dict) -> list[LoraRef]:
    items = data.get("loras", data.get("lora"))
    items = [items] if isinstance(items, (str, dict)) else items if isinstance(items, list) else []
    found = []
    for item in items:
        if isinstance(item, str) and item:
            found.append(LoraRef(item.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0], None))
        elif isinstance(item, dict) and isinstance(item.get("name", item.get("path")), str):
            name = item.get("name", item.get("path"))
            found.append(LoraRef(name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0],
                                 as_number(item.get("weight", item.get("scale")))))
    return found


def _text(value, key: str, warnings: list[str]) -> str:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) > 1:
            warnings.append(f"the {key} is a batch of {len(value)}; the first was read")
        return value[0]
    return value if isinstance(value, str) else ""


def read(found: Containers) -> PictureInfo | None:
    data = _json_of(found)
    if data is None:
        return None
    warnings: list[str] = []
    sampler, schedule = _sampler(data)
    model = next((data[k] for k in MODEL_KEYS if isinstance(data.get(k), str) and data[k]), None)
    w, h = data.get("width"), data.get("height")
    strength = as_number(data.get("strength"))
    params = {
        "Steps": text_number(data.get(MARKER)), "Sampler": sampler,
        "Schedule type": schedule, "CFG scale": text_number(data.get("guidance_scale")),
        "Seed": text_number(data.get("seed")), "Size": f"{w}x{h}" if w and h else None,
        "Model": model, "Denoising strength": text_number(strength) if strength is not None and strength < 1 else None,
        "Clip skip": text_number(data.get("clip_skip")) if isinstance(data.get("clip_skip"), int) else None,
    }
    app = next((data[k] for k in APP_KEYS if isinstance(data.get(k), str) and data[k]), None)
    if data.get("seed") is None:
        warnings.append("the diffusers JSON gives no seed")
    prompt, negative = (_text(data.get(k), k, warnings) for k in ("prompt", "negative_prompt"))
    return PictureInfo(found.path, "diffusers", f"Hugging Face Space {app}" if app and "/" in app else app,
                       prompt, negative,
                       {k: v for k, v in params.items() if v is not None}, _loras(data), dict(found.texts),
                       picture_size=found.size, warnings=warnings)
