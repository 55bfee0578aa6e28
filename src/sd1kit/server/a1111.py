"""A1111's API shapes (`modules/api/models.py`): request payloads turned into GenerationRequests (images as base64,
data URLs accepted), and responses built as A1111 builds them (base64 PNGs with their infotext, `info` JSON)."""

from __future__ import annotations

import base64
import binascii
import io
import json

from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.pipeline.save import png_info

MAX_SIDE = 2048
MAX_PIXELS = 16 << 20  # a decoded input image
MAX_BATCH_PIXELS = 8 << 20  # output pixels of one pass's batch (8 at 1024x1024, 2 at 2048x2048)
MAX_BATCH, MAX_COUNT = 8, 16  # batch_size, n_iter
MAX_PROMPT = 64 << 10  # characters of one prompt field, styles applied
MAX_UNITS = 4  # ControlNet units of one job (A1111's "Multi-ControlNet: max models" is 3 by default)
PROMPTS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")


def decode_image(data: str, what: str) -> Image.Image:
    if not isinstance(data, str) or not data:
        raise Sd1kitError(what, "expected a base64 image")
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        raw = base64.b64decode(data, validate=False)
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > MAX_PIXELS:
            raise Sd1kitError(what, f"image of {image.width}x{image.height} is larger than {MAX_PIXELS >> 20} MP")
        image.load()
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as e:
        raise Sd1kitError(what, f"not a readable image ({e.__class__.__name__})") from None
    return image


def encode_png(image: Image.Image, infotext: str | None = None, texts: dict | None = None) -> str:
    """A base64 PNG with its infotext as the "parameters" text chunk (and any other `texts`)."""
    chunks = {**(texts or {}), **({"parameters": infotext} if infotext else {})}
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(chunks))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class PayloadInvalid(Sd1kitError):
    """Fields of the wrong type (a 422, as A1111's pydantic models refuse them); `errors` lists each field's
    problem as FastAPI's validation errors do: `{"loc": ["body", field], "msg", "type"}`."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("payload", "; ".join(f"{'.'.join(e['loc'][1:])}: {e['msg']}" for e in errors[:5]))


def check_sizes(values: dict) -> None:
    """The output of every pass bounded before work starts: each side 64..MAX_SIDE, a batch's pixels (first pass
    and the hires pass, after `hr_scale` / `hr_resize`) at most MAX_BATCH_PIXELS, and the batch counts."""
    from sd1kit.pipeline.hires import target_size

    w, h = values.get("width", 512), values.get("height", 512)
    batch, count = values.get("batch_size", 1), values.get("batch_count", 1)
    if batch > MAX_BATCH or count > MAX_COUNT:
        raise Sd1kitError("batch_size/n_iter", f"{batch}x{count} is over {MAX_BATCH} pictures a batch or "
                                               f"{MAX_COUNT} batches")
    passes = [("size", (w, h))]
    if values.get("enable_hr"):
        passes.append(("hires size", target_size(w, h, values.get("hr_scale", 2.0), values.get("hr_resize"))))
    for what, (pw, ph) in passes:
        if not (64 <= pw <= MAX_SIDE and 64 <= ph <= MAX_SIDE):
            raise Sd1kitError(what, f"{pw}x{ph} is outside 64..{MAX_SIDE} a side")
        if pw * ph * batch > MAX_BATCH_PIXELS:
            raise Sd1kitError(what, f"{batch} pictures of {pw}x{ph} are over {MAX_BATCH_PIXELS >> 20} MP a batch")


def generation_request(payload, img2img: bool, settings: dict | None = None,
                       checked: bool = False) -> tuple[GenerationRequest, list]:
    """The request a txt2img / img2img payload asks for and the warnings its unsupported fields get. Types are
    checked by the payload's model (`payloads`), then values by the option table (bounds: a 400 naming the
    field), prompt lengths and the output sizes (`check_sizes`), so a bad payload is refused before a job
    exists. `settings`: the server's stored A1111 options (`/sdapi/v1/options`), applied under the payload's own
    `override_settings` and recorded as coming from "options". `checked`: the payload is already the dict its
    model validated (`payloads.validated`), not checked again. The images: `payload_images`."""
    from sd1kit.pipeline.option_surfaces import options_from_api
    from sd1kit.server.payloads import unsupported, validated

    kind = "img2img" if img2img else "txt2img"
    payload = payload if checked else validated(kind, payload)
    warnings = unsupported(payload)
    stored = options_from_api({"override_settings": settings}, kind) if settings else {}
    values = options_from_api(payload, kind)
    for key in ("prompt", "negative_prompt"):
        if payload.get(key) is not None:
            values[key] = payload[key]
    check_prompts(values)
    check_sizes({**stored, **values})
    sources = {**{k: "options" for k in stored}, **{k: "api" for k in values}}
    return GenerationRequest(**{**stored, **values}, sources=sources), warnings


def check_prompts(values: dict) -> None:
    for key in PROMPTS:
        if len(values.get(key) or "") > MAX_PROMPT:
            raise Sd1kitError(key, f"{len(values[key])} characters is over {MAX_PROMPT >> 10}K")


def payload_images(payload: dict, img2img: bool) -> dict:
    """The init image and mask of an img2img payload, decoded (bounded)."""
    if not img2img:
        return {}
    inits = payload.get("init_images") or []
    if not inits:
        raise Sd1kitError("init_images", "img2img needs an init image")
    images = {"init": decode_image(inits[0], "init_images[0]")}
    if payload.get("mask"):
        images["mask"] = decode_image(payload["mask"], "mask")
    return images


def script_warnings(payload: dict) -> list[str]:
    """`alwayson_scripts` other than ControlNet are not run: each named in the response's warnings."""
    scripts = payload.get("alwayson_scripts") or {}
    return [f"alwayson_scripts: {name!r} is not available in sd1kit; not run" for name in scripts
            if name.lower() != "controlnet"]


def generation_response(payload: dict, result, request: GenerationRequest, warnings=()) -> dict:
    """A1111's response: images (base64 PNG with infotext), the parameters echoed, `info` as a JSON string
    (its `warnings`: the payload's unsupported fields', then the run's)."""
    images = result.images
    info = {
        "prompt": payload.get("prompt", request.prompt), "all_prompts": [request.prompt] * len(images),
        "negative_prompt": payload.get("negative_prompt", request.negative_prompt),
        "all_negative_prompts": [request.negative_prompt] * len(images),
        "seed": images[0].seed if images else request.seed, "all_seeds": [i.seed for i in images],
        "subseed": images[0].subseed if images else request.subseed, "all_subseeds": [i.subseed for i in images],
        "subseed_strength": request.subseed_strength, "width": request.width, "height": request.height,
        "sampler_name": request.sampler, "cfg_scale": request.cfg_scale, "steps": request.steps,
        "batch_size": request.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": request.denoising_strength, "extra_generation_params": {},
        "index_of_first_image": 0, "infotexts": [i.image_infotext if hasattr(i, "image_infotext") else i.infotext
                                                 for i in images],
        "styles": list(payload.get("styles") or []), "job_timestamp": "", "clip_skip": request.clip_skip,
        "is_using_inpainting_conditioning": False,
        "version": "sd1kit", "interrupted": any(i.interrupted for i in images),
        "warnings": [*warnings, *result.warnings],
    }
    send = payload.get("send_images", True) is not False
    return {"images": [encode_png(i.image, i.infotext) for i in images] if send else [],
            "parameters": payload, "info": json.dumps(info)}


RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
RESIZE_ALIASES = {"Inner Fit (Scale to Fit)": "Crop and Resize", "Outer Fit (Shrink to Fit)": "Resize and Fill",
                  "Scale to Fit (Inner Fit)": "Crop and Resize", "Envelope (Outer Fit)": "Resize and Fill"}
MODULE_ALIASES = {"canny": "canny", "none": "none", "invert": "invert", "binary": "binary",
                  "threshold": "binary", "scribble_xdog": "scribble_xdog", "invert (from white bg & black line)": "invert"}


def _choice(value, choices, aliases=None, what=""):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= int(value) < len(choices):
        return choices[int(value)]
    text = str(value)
    text = (aliases or {}).get(text, text)
    if text in choices:
        return text
    raise Sd1kitError(what, f"{value!r} is not one of {', '.join(choices)}")


def control_units(payload: dict, find_model) -> list:
    """`alwayson_scripts.ControlNet.args` in the ControlNet extension's format, each unit typed
    (`payloads.ControlNetUnit`: a wrong type is a 422 naming the unit's field); `find_model(name)` resolves a
    model name (with or without its ` [hash]`) inside the models folder."""
    from sd1kit.pipeline.controlnet import ControlUnit
    from sd1kit.server.payloads import control_unit

    scripts = payload.get("alwayson_scripts") or {}
    name, block = next(((k, v) for k, v in scripts.items() if k.lower() == "controlnet"), (None, None))
    args = (block or {}).get("args") or []
    enabled = [a for a in args if isinstance(a, dict) and a.get("enabled", True) is not False]
    if len(enabled) > MAX_UNITS:
        raise Sd1kitError("ControlNet", f"{len(enabled)} enabled units is over {MAX_UNITS}")
    units = []
    for i, raw in enumerate(args):
        if not isinstance(raw, dict):
            continue
        unit = control_unit(raw, f"alwayson_scripts.{name}.args.{i}")
        if not unit.enabled:
            continue
        module = MODULE_ALIASES.get(str(unit.module or "none"))
        if module is None:
            raise Sd1kitError(f"ControlNet {i}", f"preprocessor {unit.module!r} needs downloaded weights; "
                                                 "use none, canny, binary, scribble_xdog or invert")
        image = unit.image or unit.input_image
        if isinstance(image, dict):
            image = image.get("image")
        if not image:
            raise Sd1kitError(f"ControlNet {i}", "no control image")
        a, b = unit.threshold_a, unit.threshold_b
        built = ControlUnit(find_model(str(unit.model or "")), None, module, unit.weight, unit.guidance_start,
                            unit.guidance_end,
                            _choice(unit.control_mode, CONTROL_MODES, None, f"ControlNet {i} control_mode"),
                            _choice(unit.resize_mode, RESIZE_MODES, RESIZE_ALIASES, f"ControlNet {i} resize_mode"),
                            unit.pixel_perfect, unit.processor_res if unit.processor_res > 0 else 512,
                            None if a is None or a < 0 or module in ("none", "invert") else a,
                            None if b is None or b < 0 or module in ("none", "invert") else b,
                            bool(unit.guessmode or unit.guess_mode),
                            picture=decode_image(image, f"ControlNet {i} image").convert("RGB"))
        built.validate()
        if module != "none":
            from sd1kit.pipeline.controlnet import detect_size

            res = MAX_SIDE if built.pixel_perfect else built.processor_res  # pixel perfect: at most the output's
            detect_size(built.picture.width, built.picture.height, res)
        units.append(built)
    return units
