"""A1111's API shapes (`modules/api/models.py`): request payloads turned into GenerationRequests (images as base64,
data URLs accepted), and responses built as A1111 builds them (base64 PNGs with their infotext, `info` JSON)."""

from __future__ import annotations

import base64
import binascii
import io
import json

from PIL import Image, PngImagePlugin

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.request import GenerationRequest

MAX_SIDE = 2048
MAX_PIXELS = 16 << 20  # a decoded input image
MAX_BATCH_PIXELS = 8 << 20  # output pixels of one pass's batch (8 at 1024x1024, 2 at 2048x2048)
MAX_BATCH, MAX_COUNT = 8, 16  # batch_size, n_iter


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


def encode_png(image: Image.Image, infotext: str | None = None) -> str:
    info = PngImagePlugin.PngInfo()
    if infotext:
        info.add_text("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class PayloadInvalid(Sd1kitError):
    """Fields of the wrong type (a 422, as A1111's pydantic models refuse them); `errors` lists each field's
    problem as FastAPI's validation errors do: `{"loc": ["body", field], "msg", "type"}`."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("payload", "; ".join(f"{'.'.join(e['loc'][1:])}: {e['msg']}" for e in errors[:5]))


def _field_error(name: str, msg: str, kind: str = "type_error") -> dict:
    return {"loc": ["body", *name.split(".", 1)], "msg": msg, "type": kind}


def _typed(option, names: tuple, payload: dict) -> tuple[list[dict], object]:
    """One table row's payload fields converted by its kind: (field errors, the value or None)."""
    from sd1kit.pipeline.option_surfaces import _api_convert, _api_value
    from sd1kit.pipeline.options import _whole

    raws = [_api_value(payload, n) for n in names]
    if all(r is None for r in raws):
        return [], None
    errors = []
    if option.kind is tuple:  # each side on its own, so the error names the field
        for name, raw in zip(names, raws):
            try:
                raw is None or _whole(raw)
            except (ValueError, TypeError, OverflowError):
                errors.append(_field_error(name, f"{raw!r} is not a whole number"))
        return errors, None
    try:
        return [], _api_convert(option, raws[0])
    except (ValueError, TypeError, OverflowError):
        return [_field_error(names[0], f"{raws[0]!r} is not a valid {option.kind.__name__}")], None


def check_fields(payload, kind: str) -> None:
    """Every option field the payload has, checked by the option table before anything runs: a wrong type is a
    422 (all of them listed), then a value out of the row's bounds a 400. The hires fields count only with
    `enable_hr` (A1111 ignores them otherwise; clients send `hr_scale: 0` with hires off)."""
    from sd1kit.pipeline.option_surfaces import _api_names, _api_rows

    if not isinstance(payload, dict):
        raise PayloadInvalid([{"loc": ["body"], "msg": "expected a JSON object", "type": "dict_type"}])
    if payload.get("override_settings") is not None and not isinstance(payload["override_settings"], dict):
        raise PayloadInvalid([_field_error("override_settings", "expected a JSON object", "dict_type")])
    errors, checks = [], []
    hires = kind == "txt2img" and bool(payload.get("enable_hr"))
    for option in _api_rows(kind):
        if option.attr.startswith("hr_") and not hires:  # ignored, as A1111 (and options_from_api) ignore them
            continue
        names = _api_names(option)
        found, value = _typed(option, names, payload)
        errors += found
        if value is not None:
            checks.append((option, value, names[0]))
    for key in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
        value = payload.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            errors.append(_field_error(key, "expected a string", "string_type"))
    if errors:
        raise PayloadInvalid(errors)
    for option, value, label in checks:
        option.check(value, label)


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


def generation_request(payload: dict, img2img: bool) -> tuple[GenerationRequest, dict]:
    """The request a txt2img / img2img payload asks for (the option table's API fields; every field the payload
    sets recorded as coming from the API), and the images it carries (PIL). Types, bounds and output sizes are
    checked first (`check_fields`, `check_sizes`), so a bad payload is refused before a job exists."""
    from sd1kit.pipeline.option_surfaces import options_from_api

    kind = "img2img" if img2img else "txt2img"
    check_fields(payload, kind)
    values = options_from_api(payload, kind)
    for key in ("prompt", "negative_prompt"):
        if payload.get(key) is not None:
            values[key] = str(payload[key])
    check_sizes(values)
    images = {}
    if img2img:
        inits = payload.get("init_images") or []
        if not isinstance(inits, list) or not inits:
            raise Sd1kitError("init_images", "img2img needs an init image")
        images["init"] = decode_image(inits[0], "init_images[0]")
        if payload.get("mask"):
            images["mask"] = decode_image(payload["mask"], "mask")
    return GenerationRequest(**values, sources={k: "api" for k in values}), images


def generation_response(payload: dict, result, request: GenerationRequest) -> dict:
    """A1111's response: images (base64 PNG with infotext), the parameters echoed, `info` as a JSON string."""
    images = result.images
    info = {
        "prompt": request.prompt, "all_prompts": [request.prompt] * len(images),
        "negative_prompt": request.negative_prompt, "all_negative_prompts": [request.negative_prompt] * len(images),
        "seed": images[0].seed if images else request.seed, "all_seeds": [i.seed for i in images],
        "subseed": images[0].subseed if images else request.subseed, "all_subseeds": [i.subseed for i in images],
        "subseed_strength": request.subseed_strength, "width": request.width, "height": request.height,
        "sampler_name": request.sampler, "cfg_scale": request.cfg_scale, "steps": request.steps,
        "batch_size": request.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": request.denoising_strength, "extra_generation_params": {},
        "index_of_first_image": 0, "infotexts": [i.image_infotext if hasattr(i, "image_infotext") else i.infotext
                                                 for i in images],
        "styles": [], "job_timestamp": "", "clip_skip": request.clip_skip, "is_using_inpainting_conditioning": False,
        "version": "sd1kit", "interrupted": any(i.interrupted for i in images), "warnings": list(result.warnings),
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
    """`alwayson_scripts.ControlNet.args` in the ControlNet extension's format; `find_model(name)` resolves a
    model name (with or without its ` [hash]`) inside the models folder."""
    from sd1kit.pipeline.controlnet import ControlUnit

    scripts = payload.get("alwayson_scripts") or {}
    block = next((v for k, v in scripts.items() if k.lower() == "controlnet"), None)
    units = []
    for i, raw in enumerate((block or {}).get("args") or []):
        if not isinstance(raw, dict) or raw.get("enabled") is False:
            continue
        module = MODULE_ALIASES.get(str(raw.get("module") or "none"))
        if module is None:
            raise Sd1kitError(f"ControlNet {i}", f"preprocessor {raw.get('module')!r} needs downloaded weights; "
                                                 "use none, canny, binary, scribble_xdog or invert")
        image = raw.get("image") or raw.get("input_image")
        if isinstance(image, dict):
            image = image.get("image")
        if not image:
            raise Sd1kitError(f"ControlNet {i}", "no control image")
        a, b = raw.get("threshold_a"), raw.get("threshold_b")
        unit = ControlUnit(find_model(str(raw.get("model") or "")), None, module, float(raw.get("weight", 1.0)),
                           float(raw.get("guidance_start", 0.0)), float(raw.get("guidance_end", 1.0)),
                           _choice(raw.get("control_mode", 0), CONTROL_MODES, None, f"ControlNet {i} control_mode"),
                           _choice(raw.get("resize_mode", 1), RESIZE_MODES, RESIZE_ALIASES, f"ControlNet {i} resize_mode"),
                           bool(raw.get("pixel_perfect")), int(raw.get("processor_res") or 512),
                           None if a is None or a < 0 or module in ("none", "invert") else float(a),
                           None if b is None or b < 0 or module in ("none", "invert") else float(b),
                           bool(raw.get("guessmode") or raw.get("guess_mode")),
                           picture=decode_image(image, f"ControlNet {i} image").convert("RGB"))
        unit.validate()
        units.append(unit)
    return units
