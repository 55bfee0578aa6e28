"""A1111's request bodies as pydantic models, so FastAPI validates every field (a wrong type is a 422 listing each
field) and `/openapi.json` documents every one. A1111 declares them in `modules/api/models.py` from its processing
classes' arguments; here the option rows come from the option table (`pipeline.options.OPTIONS`: each row's type,
bounds and choices), the rest are A1111's other fields, declared once below.

The models check types only and keep the client's values as sent: the one conversion of a value is the option
table's (`option_surfaces.options_from_api`), which also checks bounds (a 400 naming the field). A1111's fields
that sd1kit does not act on are declared in `UNSUPPORTED`: a value that asks for them is refused (400) or, where
the picture is still the one asked for, answered with a warning; never silently ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, create_model

from sd1kit.errors import Sd1kitError

JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", tuple: "integer"}


def _accepting(option, part: bool):
    """A validator that refuses what the option table cannot convert, keeping the value as sent."""
    from sd1kit.pipeline.option_surfaces import _api_convert
    from sd1kit.pipeline.options import _whole

    what = "a whole number" if part or option.kind is int else f"a valid {option.kind.__name__}"

    def check(value):
        if value is None:
            return None
        try:
            _whole(value) if part else _api_convert(option, value)
        except (ValueError, TypeError, OverflowError, Sd1kitError):
            raise ValueError(f"{str(value)[:60]!r} is not {what}") from None
        return value
    return BeforeValidator(check)


def _schema(option) -> dict:
    entry: dict = {"type": JSON_TYPES[option.kind], "description": option.help or option.attr}
    if option.from_api is not None and option.kind is not tuple:  # A1111 sends these as words or indexes
        entry = {"anyOf": [{"type": JSON_TYPES[option.kind]}, {"type": "integer"}, {"type": "null"}],
                 "description": entry["description"]}
    if option.default is not None and option.kind is not tuple:
        entry["default"] = option.default
    if option.bounds:
        entry["minimum"], entry["maximum"] = option.bounds
    if option.choices and option.from_api is None:
        entry["enum"] = list(option.choices)
    return entry


def _option_fields(rows, settings: bool) -> dict:
    """pydantic fields for the option rows' payload names (top-level ones, or `override_settings.X` ones)."""
    from sd1kit.pipeline.option_surfaces import _api_names

    fields = {}
    for option in rows:
        names = _api_names(option)
        for name in names:
            if name.startswith("override_settings.") != settings:
                continue
            check = _accepting(option, part=option.kind is tuple)
            fields[name.split(".", 1)[-1]] = (Annotated[Any, check, WithJsonSchema(_schema(option))], None)
    return fields


ALLOW = ConfigDict(extra="allow")  # A1111 clients send many more fields; each is kept (and some reported)


def _settings_model():
    from sd1kit.pipeline.options import OPTIONS

    fields = _option_fields([o for o in OPTIONS if o.api], settings=True)
    fields["sd_model_checkpoint"] = (str | None, Field(None, description="a title, name or hash of "
                                                                              "/sdapi/v1/sd-models"))
    fields["sd_vae"] = (str | None, Field(None, description="a name of /sdapi/v1/sd-vae, Automatic or None"))
    return create_model("OverrideSettings", __config__=ALLOW, **fields)


OverrideSettings = _settings_model()


class ScriptArgs(BaseModel):
    model_config = ALLOW
    args: list = []


class ControlNetUnit(BaseModel):
    """A unit of the ControlNet extension's `alwayson_scripts.ControlNet.args` (sd-webui-controlnet's
    `ControlNetUnit`): what sd1kit runs of it; other keys are kept and unused."""

    model_config = ALLOW
    enabled: bool = True
    module: str | None = "none"
    model: str | None = None
    weight: float = Field(1.0, ge=0.0, le=2.0)
    image: str | dict | None = None
    input_image: str | dict | None = None
    resize_mode: int | str = 1
    processor_res: int = Field(512, ge=-1, le=2048)
    threshold_a: float | None = None
    threshold_b: float | None = None
    guidance_start: float = Field(0.0, ge=0.0, le=1.0)
    guidance_end: float = Field(1.0, ge=0.0, le=1.0)
    control_mode: int | str = 0
    pixel_perfect: bool = False
    guessmode: bool | None = None
    guess_mode: bool | None = None
    lowvram: bool = False


COMMON = {  # A1111's fields of both payloads that are not option rows
    "prompt": (str, ""), "negative_prompt": (str, ""),
    "styles": (list[str] | None, Field(None, max_length=32, description="names of /sdapi/v1/prompt-styles, applied "
                                                                         "in order")),
    "override_settings": (OverrideSettings | None, None),
    "override_settings_restore_afterwards": (bool, Field(True, description="false: the override settings stay "
                                                                           "(the model among them)")),
    "alwayson_scripts": (dict[str, ScriptArgs] | None, Field(None, description="ControlNet units: "
                                                                               "{'ControlNet': {'args': [...]}}")),
    "sampler_index": (str | None, Field(None, description="older clients' sampler_name")),
    "script_name": (str | None, None), "script_args": (list, []),
    "send_images": (bool, True), "save_images": (bool, False),
    "restore_faces": (bool | None, None), "tiling": (bool | None, None),
    "do_not_save_samples": (bool, False), "do_not_save_grid": (bool, False),
    "refiner_checkpoint": (str | None, None), "refiner_switch_at": (float | None, None),
    "disable_extra_networks": (bool, False), "firstpass_image": (str | None, None),
    "s_churn": (float | None, None), "s_tmax": (float | None, None), "s_tmin": (float | None, None),
    "infotext": (str | None, None),
    "force_task_id": (str | None, Field(None, max_length=128, description="the id /internal/progress knows it by")),
    "comments": (dict | None, None),
    "sd1kit_dry_run": (bool, Field(False, description="answer with the generation plan, run nothing")),
}
ONLY = {
    "txt2img": {"hr_checkpoint_name": (str | None, None)},
    "img2img": {"init_images": (list[str] | None, None), "mask": (str | None, None),
                "resize_mode": (int, Field(0, description="0: Just resize (the one sd1kit has)")),
                "image_cfg_scale": (float | None, None), "initial_noise_multiplier": (float | None, None),
                "latent_mask": (str | None, None), "include_init_images": (bool, False),
                "mask_round": (bool, True), "mask_blur_x": (int, 4), "mask_blur_y": (int, 4)},
}
NAMES = {"txt2img": "StableDiffusionTxt2ImgProcessingAPI", "img2img": "StableDiffusionImg2ImgProcessingAPI"}


def _payload_model(kind: str):
    from sd1kit.pipeline.option_surfaces import _api_rows

    fields = {**_option_fields(_api_rows(kind), settings=False), **COMMON, **ONLY[kind]}
    return create_model(NAMES[kind], __config__=ALLOW, **fields)


Txt2ImgPayload = _payload_model("txt2img")
Img2ImgPayload = _payload_model("img2img")
PAYLOADS = {"txt2img": Txt2ImgPayload, "img2img": Img2ImgPayload}


class JobRequest(BaseModel):
    """sd1kit's own job API (the page's): a txt2img / img2img payload run as a job that can be polled."""

    kind: Literal["txt2img", "img2img"] = "txt2img"
    payload: dict = {}


def _off(value) -> bool:
    return value in (None, False, 0, "", "None", [], {})


# field, what counts as off besides the usual (None, False, 0, ""), "warn" or "refuse", the sentence said
UNSUPPORTED = (
    ("restore_faces", (), "warn", "face restoration is not available in sd1kit; the pictures are not face-restored"),
    ("save_images", (), "warn", "sd1kit does not save pictures on the server; they are in the response"),
    ("include_init_images", (), "warn", "the init pictures are not added to the response"),
    ("tiling", (), "refuse", "tiling (seamless pictures) is not supported"),
    ("script_name", (), "refuse", "scripts are not supported (ControlNet units go in alwayson_scripts)"),
    ("refiner_checkpoint", (), "refuse", "a refiner checkpoint is not supported (SD1 has none)"),
    ("hr_checkpoint_name", ("Use same checkpoint",), "refuse", "a second checkpoint for the hires pass is not "
                                                               "supported"),
    ("firstpass_image", (), "refuse", "a given first-pass picture is not supported"),
    ("disable_extra_networks", (), "refuse", "turning extra networks off is not supported; remove the "
                                             "<lora:...> tags instead"),
    ("s_churn", (), "refuse", "s_churn (Euler/Heun churn) is not supported"),
    ("infotext", (), "refuse", "an infotext payload is not supported; send its fields (POST it to png-info)"),
    ("latent_mask", (), "refuse", "a separate latent mask is not supported"),
    ("initial_noise_multiplier", (1, 1.0), "refuse", "an initial noise multiplier other than 1 is not supported"),
    ("resize_mode", (), "refuse", "img2img resize modes other than 0 (Just resize) are not supported"),
)


def unsupported(payload: dict) -> list[str]:
    """The warnings a payload's unsupported fields get; a field whose value would change the picture is refused."""
    warnings = []
    for name, off, action, why in UNSUPPORTED:
        value = payload.get(name)
        if _off(value) or value in off:
            continue
        if action == "refuse":
            raise Sd1kitError(name, f"{why}, not {str(value)[:60]!r}")
        warnings.append(f"{name}: {why}")
    return warnings


def validated_model(model, raw, prefix: tuple = ("body",)):
    """`raw` as `model`, or PayloadInvalid listing each field's problem under `prefix` (FastAPI's `loc`)."""
    from sd1kit.server.a1111 import PayloadInvalid

    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise PayloadInvalid([{"loc": [*prefix, *map(str, err["loc"])], "msg": err["msg"], "type": err["type"]}
                              for err in e.errors()]) from None


def validated(kind: str, payload, prefix: tuple = ("body",)) -> dict:
    """`payload` checked by the kind's model: the fields as sent (a dict)."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(exclude_unset=True)
    return validated_model(PAYLOADS[kind], payload, prefix).model_dump(exclude_unset=True)


def control_unit(raw, where: str) -> ControlNetUnit:
    return validated_model(ControlNetUnit, raw, ("body", *where.split(".")))


class ExtrasRequest(BaseModel):
    """A1111's `ExtrasBaseRequest`: the upscale of the Extras tab (face restoration is not available)."""

    model_config = ALLOW
    resize_mode: Literal[0, 1] = Field(0, description="0: scale by upscaling_resize, 1: to upscaling_resize_w x h")
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0.0, ge=0.0, le=1.0, description="refused above 0: no face restoration")
    codeformer_visibility: float = Field(0.0, ge=0.0, le=1.0, description="refused above 0: no face restoration")
    codeformer_weight: float = Field(0.0, ge=0.0, le=1.0)
    upscaling_resize: float = Field(2.0, ge=1.0, le=8.0)
    upscaling_resize_w: int = Field(512, ge=64, le=8192)
    upscaling_resize_h: int = Field(512, ge=64, le=8192)
    upscaling_crop: bool = True
    upscaler_1: str = Field("None", description="a name of /sdapi/v1/upscalers")
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0.0, ge=0.0, le=1.0)
    upscale_first: bool = False

    def upscale(self, models_dir=None, settings: dict | None = None):
        """The Upscale spec; `models_dir` holds the model upscalers, `settings` the stored options (ESRGAN_tile,
        ESRGAN_tile_overlap)."""
        from sd1kit.pipeline.upscale import Upscale

        for name in ("gfpgan_visibility", "codeformer_visibility"):
            if getattr(self, name) > 0:
                raise Sd1kitError(name, "face restoration is not available in sd1kit")
        to = (self.upscaling_resize_w, self.upscaling_resize_h) if self.resize_mode == 1 else None
        settings = settings or {}
        return Upscale(self.upscaler_1, self.upscaling_resize, to, self.upscaling_crop, self.upscaler_2,
                       self.extras_upscaler_2_visibility, str(models_dir) if models_dir else None,
                       settings.get("ESRGAN_tile"), settings.get("ESRGAN_tile_overlap"))


class ExtrasSingleImageRequest(ExtrasRequest):
    image: str = Field("", description="base64 picture (a data URL is accepted)")


class FileData(BaseModel):
    data: str
    name: str = ""


class ExtrasBatchImagesRequest(ExtrasRequest):
    imageList: list[FileData] = Field(..., max_length=8, description="pictures as {data: base64, name}")


class DetectRequest(BaseModel):
    """The ControlNet extension's `/controlnet/detect`: its preprocessors run on pictures."""

    model_config = ALLOW
    controlnet_module: str = "none"
    controlnet_input_images: list[str] = Field(..., max_length=8)
    controlnet_processor_res: int = Field(512, ge=64, le=2048)
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1
    low_vram: bool = False


class ProgressRequest(BaseModel):
    """A1111's `/internal/progress` request (`modules/progress.py`)."""

    id_task: str | None = Field(None, max_length=128)
    id_live_preview: int = -1
    live_preview: bool = True
