"""The generation option table: every option a picture depends on, declared once. Its CLI flag, A1111 infotext key
(writer and reader), A1111 API field, default and bounds all come from its row; `generate`'s flags, the infotext,
`--from`, the server's payload parser and its OpenAPI schema are built from `OPTIONS` (the last three in
`option_surfaces.py`; tests walk the table).

Resources that name files (model, VAE, ControlNet units, init image, mask, folders) are not options: each surface
resolves them in its own folders (the server never takes a path from a client)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from sd1kit.errors import Sd1kitError
from sd1kit.metadata.picture import text_number
from sd1kit.pipeline.inpaint import MASKED_CONTENT as INPAINTING_FILL  # in A1111's inpainting_fill order
EMPHASIS_TEXT = {"no-norm": "No norm", "none": "None"}  # A1111's "Emphasis" infotext values ("Original" unwritten)
HIRES_KEYS = ("Hires upscale", "Hires upscaler", "Hires resize")


@dataclass(frozen=True)
class Resolved:
    """A setting's value and where it came from ("cli", "picture", "yaml", "catalog:easyfluff", "probe", ...);
    `note` is said to the user when the value is used (e.g. the probe's verdict)."""

    value: Any
    source: str
    note: str | None = None

    def as_json(self) -> dict:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"value": value, "source": self.source}


@dataclass(frozen=True)
class WriteContext:
    """What the infotext of one picture needs beyond the request: its seeds, size, sampler and the model."""

    seed: int = 0
    subseed: int = 0
    size: tuple[int, int] = (512, 512)
    sampler: Any = None  # SamplerSpec
    schedule_label: str = "Automatic"
    inpainting_model: bool = False


def parse_pair(text: str, what: str = "size") -> tuple[int, int]:
    """"512x768" -> (512, 768)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
        return w, h
    except ValueError:
        raise Sd1kitError(what, f"expected WIDTHxHEIGHT, e.g. 512x768, not {text!r}") from None


def _bool_text(text: str) -> bool:
    """A1111's reading of a flag in an infotext: "False" is off, other words on (here: true/1/yes/on)."""
    return str(text).strip().lower() in ("true", "1", "yes", "on")


READERS: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str, bool: _bool_text, tuple: parse_pair}


@dataclass(frozen=True)
class Option:
    """One generation option. `attr` is the GenerationRequest field (for "size": width and height)."""

    attr: str
    kind: type  # int, float, str, bool, or tuple (a WIDTHxHEIGHT pair)
    default: Any
    infotext: str | None  # A1111's infotext key; None: not in the infotext (said why in `help`)
    cli: str | None  # the `generate` flag
    api: str | tuple[str, str] | None  # A1111's payload field; "override_settings.X"; a pair for WxH options
    help: str = ""
    bounds: tuple[float, float] | None = None
    choices: tuple | None = None
    mode: str | None = None  # "txt2img" / "img2img": only jobs of that kind have it (API and infotext)
    when: Callable[[Any, WriteContext], bool] | None = None  # written only when this holds
    always: bool = False  # written even at its default (Steps, Seed, CFG scale ...)
    written: Callable[[Any, Any, WriteContext], Any] | None = None  # value -> infotext value (None: left out)
    read: Callable[[str], Any] | None = None  # infotext text -> value (default: by kind)
    from_api: Callable[[Any], Any] | None = None  # payload value -> value (default: by kind)
    to_api: Callable[[Any], Any] | None = None  # value -> payload value, where A1111's field differs
    alt_key: tuple[str, Callable[[WriteContext], bool]] | None = None  # another key A1111 writes in some cases
    late: bool = False  # written after the modifiers' fields (A1111's compatibility switches come last)
    example: Any = None  # a value other than the default, for the table walk
    context: dict = field(default_factory=dict)  # request fields that make it written, for the table walk

    def key(self, ctx: WriteContext) -> str | None:
        if self.alt_key is not None and self.alt_key[1](ctx):
            return self.alt_key[0]
        return self.infotext

    def get(self, request) -> Any:
        if self.attr == "size":
            return request.width, request.height
        return getattr(request, self.attr)

    def changes(self, value) -> dict:
        """The request fields this value sets."""
        if self.attr == "size":
            return {"width": value[0], "height": value[1]}
        return {self.attr: value}

    def infotext_value(self, request, ctx: WriteContext):
        value = self.get(request)
        if self.when is not None and not self.when(request, ctx):
            return None
        if self.written is not None:
            return self.written(value, request, ctx)
        if value is None or (value == self.default and not self.always):
            return None
        if self.kind is tuple:
            return "{}x{}".format(*value)
        return value

    def from_infotext(self, text: str):
        reader = self.read or READERS[self.kind]
        return reader(text)

    def check(self, value, label: str | None = None) -> None:
        """Bounds and choices: a one-line refusal naming the option."""
        label = label or self.cli or self.attr
        if value is None:
            return
        if self.kind in (int, float) and isinstance(value, float) and not math.isfinite(value):
            raise Sd1kitError(label, f"must be a finite number, not {value}")
        if self.bounds is not None and not (self.bounds[0] <= value <= self.bounds[1]):
            lo, hi = (text_number(float(b)) for b in self.bounds)
            raise Sd1kitError(label, f"must be between {lo} and {hi}, not {text_number(value)}")
        if self.choices is not None and value not in self.choices:
            raise Sd1kitError(label, f"must be one of {', '.join(map(str, self.choices))}, not {value!r}")


def _has_init(request, ctx) -> bool:
    return request.init_image is not None


def _has_mask(request, ctx) -> bool:
    return request.mask_image is not None


def _hires(request, ctx) -> bool:
    return bool(request.enable_hr)


def _with_hr_resize(request, ctx) -> bool:
    return bool(request.enable_hr) and not request.hr_resize


def _schedule_written(value, request, ctx: WriteContext):
    return ctx.schedule_label


def _eta_written(value, request, ctx: WriteContext):
    default = ctx.sampler.options.get("eta", 1.0) if ctx.sampler is not None else 1.0
    return value if value is not None and value != default else None


def _ensd_written(value, request, ctx: WriteContext):
    return value if value and ctx.sampler is not None and ctx.sampler.noise == "rng" else None


def _subseed_written(value, request, ctx: WriteContext):
    return ctx.subseed if request.subseed_strength else None


def _from_index(choices):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        if isinstance(value, (int, float)) or str(value).isdigit():
            index = _whole(value)
            if not 0 <= index < len(choices):
                raise ValueError(value)
            return choices[index]
        return str(value)
    return convert


def _pair_or_none(off: int, missing: int = 0, either: bool = False):
    """An A1111 pair of fields (w, h): a side not sent is `missing`; `off` or less means unset (both sides, or
    with `either` one side is enough to be set)."""
    def convert(pair):
        w, h = (missing if v is None else _whole(v) for v in pair)
        set_ = (w > off or h > off) if either else (w > off and h > off)
        return (w, h) if set_ else None
    return convert


def _whole(value) -> int:
    """An integer from JSON: 512, 512.0 or "512" (JavaScript clients send floats), never 512.5 or true."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def _worded(text: str) -> dict:
    """A flag whose infotext key is written only when on, with `text` as its value ("Inpaint area: Only masked");
    its A1111 API field is a bool or 0/1."""
    return {"written": lambda v, r, c: text if v else None, "read": lambda t: t == text,
            "from_api": lambda v: v if isinstance(v, bool) else _bool_text(v) if isinstance(v, str) else bool(_whole(v))}


def _or_none(*unset: str):
    """A1111's way of saying "the same as the first pass" (an empty string, "Use same sampler", ...) -> None."""
    return lambda v: None if v is None or str(v) in ("", *unset) else str(v)


def _emphasis(text) -> str:
    value = {"original": "original", "no norm": "no-norm", "no-norm": "no-norm", "none": "none"}.get(
        str(text).strip().lower())
    if value is None:  # e.g. A1111's "Ignore": not a mode sd1kit has, so not silently another
        raise ValueError(text)
    return value


def _old_timelines_matter(request, ctx: WriteContext) -> bool:
    """A1111 writes "Old prompt editing timelines" only when the old rule gives other schedules than the new."""
    from sd1kit.prompts.schedule import prompt_schedule

    factor = 2 if ctx.sampler is not None and ctx.sampler.second_order else 1
    steps = request.steps * factor
    hires = (request.hr_steps or request.steps) * factor if request.enable_hr else None
    texts = [t for t in (request.prompt, request.negative_prompt, request.hr_prompt, request.hr_negative_prompt) if t]
    return any(prompt_schedule(t, steps, hires, True) != prompt_schedule(t, steps, hires, False) for t in texts)


def _noisy_sampler(request, ctx: WriteContext) -> bool:
    """s_noise acts only on samplers that add noise (ancestral, SDE)."""
    return ctx.sampler is None or ctx.sampler.noise is not None


def _timestep_sampler(ctx: WriteContext) -> bool:
    return ctx.sampler is not None and ctx.sampler.timesteps


MASKED = {"mask_image": "mask.png", "init_image": "init.png"}  # what makes a mask option written (table walk)


OPTIONS: tuple[Option, ...] = (
    Option("steps", int, 20, "Steps", "--steps", "steps", "sampling steps", bounds=(1, 150), always=True, example=7),
    Option("sampler", str, "Euler a", "Sampler", "--sampler", "sampler_name", "A1111's sampler name", always=True,
           written=lambda v, r, c: c.sampler.name if c.sampler is not None else v, from_api=_or_none(),
           example="DPM++ 2M"),
    Option("schedule", str, "Automatic", "Schedule type", "--schedule", "scheduler",
           "Automatic, Karras, Exponential, ...", always=True, written=_schedule_written,
           from_api=lambda v: str(v) if v else "Automatic", example="Karras"),
    Option("cfg_scale", float, 7.0, "CFG scale", "--cfg", "cfg_scale", "classifier-free guidance scale",
           bounds=(-100.0, 100.0), always=True, example=4.5),
    Option("seed", int, -1, "Seed", "--seed", "seed", "-1: random", bounds=(-1, 2 ** 64 - 1), always=True,
           written=lambda v, r, c: c.seed, example=1234),
    Option("size", tuple, None, "Size", "--size", ("width", "height"), "WIDTHxHEIGHT (default: the model's "
           "own resolution where its metadata says, else 512x512)", always=True, from_api=_pair_or_none(0, 512),
           written=lambda v, r, c: "{}x{}".format(*c.size), example=(64, 96)),
    Option("subseed", int, -1, "Variation seed", "--subseed", "subseed", "variation seed", bounds=(-1, 2 ** 64 - 1),
           written=_subseed_written, example=77, context={"subseed_strength": 0.5}),
    Option("subseed_strength", float, 0.0, "Variation seed strength", "--subseed-strength", "subseed_strength",
           bounds=(0.0, 1.0), example=0.25),
    Option("seed_resize_from", tuple, None, "Seed resize from", "--seed-resize-from",
           ("seed_resize_from_w", "seed_resize_from_h"), "WIDTHxHEIGHT the seed's noise was made for",
           from_api=_pair_or_none(0), example=(64, 64)),
    Option("denoising_strength", float, 0.75, "Denoising strength", "--denoise", "denoising_strength",
           "img2img: how much of the init image is redrawn", bounds=(0.0, 1.0), mode="img2img", when=_has_init,
           always=True, example=0.5, context={"init_image": "init.png"}),
    Option("mask_weight", float, 1.0, "Conditional mask weight", "--mask-weight",
           "override_settings.inpainting_mask_weight", "inpainting models' conditional mask weight",
           bounds=(0.0, 1.0), when=lambda r, c: c.inpainting_model and r.init_image is not None, always=True,
           example=0.5, context={"init_image": "init.png"}),
    Option("clip_skip", int, None, "Clip skip", "--clip-skip", "override_settings.CLIP_stop_at_last_layers",
           "stop at the n-th last CLIP layer (default: the model's, else 1)", bounds=(1, 12),
           written=lambda v, r, c: v if v and v > 1 else None,
           example=2),
    Option("ensd", int, 0, "ENSD", "--ensd", "override_settings.eta_noise_seed_delta",
           "eta noise seed delta (NovelAI: 31337)", bounds=(0, 2 ** 32 - 1), written=_ensd_written, example=31337),
    Option("token_merging", float, 0.0, "Token merging ratio", "--token-merging",
           "override_settings.token_merging_ratio", "fast mode: ToMe ratio, e.g. 0.5 (tomesd as A1111 sets it)",
           bounds=(0.0, 0.9), example=0.5),
    Option("rng", str, "GPU", "RNG", "--rng", "override_settings.randn_source", "A1111's noise source",
           choices=("GPU", "CPU", "NV"), example="CPU"),
    Option("s_min_uncond", float, 0.0, "NGMS", "--ngms", "s_min_uncond", "negative guidance minimum sigma",
           bounds=(0.0, 100.0), example=0.5),
    Option("eta", float, None, "Eta", "--eta", "eta", "ancestral / DDIM noise (default: the sampler's)",
           bounds=(0.0, 10.0), written=_eta_written, alt_key=("Eta DDIM", _timestep_sampler), example=0.5),
    Option("s_noise", float, 1.0, "Sigma noise", "--s-noise", "override_settings.s_noise",
           "noise multiplier of ancestral and SDE steps (k-diffusion's s_noise)", bounds=(0.0, 10.0), when=_noisy_sampler,
           example=0.98),
    Option("cfg_rescale", float, None, "CFG Rescale phi", "--cfg-rescale", "cfg_rescale",
           "CFG rescale phi (v-prediction models; default: the model's, else 0)", bounds=(0.0, 1.0),
           written=lambda v, r, c: v or None, example=0.7),
    Option("emphasis", str, "original", "Emphasis", "--emphasis", "override_settings.emphasis",
           "attention emphasis: original, no-norm, none", choices=("original", "no-norm", "none"),
           written=lambda v, r, c: EMPHASIS_TEXT.get(v), read=_emphasis, from_api=_emphasis,
           to_api=lambda v: EMPHASIS_TEXT.get(v, "Original"), example="no-norm"),
    Option("old_prompt_editing", bool, False, "Old prompt editing timelines", "--old-prompt-editing",
           "override_settings.use_old_scheduling", "A1111 before 1.6: [a:b:0.5] and [a:b:5] counted over the first "
           "pass only, fractions below 1 as fractions", late=True, when=_old_timelines_matter, example=True,
           context={"prompt": "a [b:c:0.5] d", "enable_hr": True}),
    Option("pad_conds", bool, False, "Pad conds", "--pad-conds", "override_settings.pad_cond_uncond",
           "pad prompt and negative prompt to the same length with empty-prompt chunks", late=True, example=True),
    Option("pad_conds_v0", bool, False, "Pad conds v0", "--pad-conds-v0", "override_settings.pad_cond_uncond_v0",
           "A1111 before 1.6 (DDIM, PLMS): the negative prompt padded with its last vector or cut to the "
           "prompt's length", late=True, example=True),
    Option("downcast_alphas_cumprod", bool, False, "Downcast alphas_cumprod", "--downcast-alphas-cumprod",
           "override_settings.use_downcasted_alpha_bar", "A1111 before 1.7: the noise schedule rounded through "
           "fp16, as old seeds were made", late=True, example=True),
    Option("zero_terminal_snr", bool, None, "Noise Schedule", "--ztsnr", "override_settings.sd_noise_schedule",
           "zero terminal SNR schedule (default: what the model says)",
           written=lambda v, r, c: "Zero Terminal SNR" if v else None,
           read=lambda t: t.strip().lower() == "zero terminal snr",
           from_api=lambda v: v if isinstance(v, bool) else str(v).strip().lower() == "zero terminal snr",
           to_api=lambda v: "Zero Terminal SNR" if v else "Default", example=True),
    Option("prediction", str, None, None, "--prediction", "sd1kit_prediction",
           "epsilon or v (default: what the model says; not in A1111's infotext, which does not record it)",
           choices=("epsilon", "v"), example="v"),
    Option("vae_decoder", str, "Full", "VAE Decoder", "--vae-decoder", "override_settings.sd_vae_decode_method",
           "Full, or TAESD: the tiny decoder (fast mode; weights in $SD1KIT_HOME/models/VAE-taesd)",
           choices=("Full", "TAESD"), example="TAESD"),
    Option("deepcache", int, 0, "DeepCache", "--deepcache", "sd1kit_deepcache", "fast mode: the whole UNet every "
           "N steps, its shallow branch on cached deep features between", bounds=(0, 100),
           written=lambda v, r, c: v if v > 1 else None, example=3),
    Option("batch_size", int, 1, None, "--batch-size", "batch_size", "pictures per batch (not in the infotext: "
           "each picture's own seed is)", bounds=(1, 64), example=2),
    Option("batch_count", int, 1, None, "--batch-count", "n_iter", "batches (not in the infotext)",
           bounds=(1, 1000), example=3),
    Option("per_image", bool, True, None, "--batched-unet", "sd1kit_per_image",
           "exact batches: the UNet runs each picture alone, so picture i equals its seed run alone (off: one "
           "batched call, faster on a GPU, last bits may differ; not in the infotext, which pictures don't need)",
           example=False),
    Option("tiled_vae", bool, False, None, "--tiled-vae", "sd1kit_tiled_vae", "decode in bands of rows with each "
           "GroupNorm's whole-picture statistics: the same pixels (fp32: within 0.01 grey level) in less memory; on "
           "by itself past 1 MP (not in the infotext)", example=True),
    # inpainting (A1111's img2img with a mask)
    Option("mask_blur", int, 4, "Mask blur", "--mask-blur", "mask_blur", "mask blur radius", bounds=(0, 256),
           mode="img2img", when=_has_mask, written=lambda v, r, c: v or None, example=8, context=MASKED),
    Option("invert_mask", bool, False, "Mask mode", "--invert-mask", "inpainting_mask_invert",
           "repaint the black area instead", mode="img2img", when=_has_mask, example=True, context=MASKED,
           **_worded("Inpaint not masked")),
    Option("masked_content", str, "original", "Masked content", "--masked-content", "inpainting_fill",
           "what the masked area starts from", choices=INPAINTING_FILL, mode="img2img", when=_has_mask,
           always=True, from_api=_from_index(INPAINTING_FILL), example="fill", context=MASKED),
    Option("inpaint_full_res", bool, False, "Inpaint area", "--only-masked", "inpaint_full_res",
           'A1111 "Inpaint area: Only masked"', mode="img2img", when=_has_mask, example=True, context=MASKED,
           **_worded("Only masked")),
    Option("inpaint_padding", int, 32, "Masked area padding", "--mask-padding", "inpaint_full_res_padding",
           "padding around the masked area for --only-masked", bounds=(0, 256), mode="img2img",
           when=lambda r, c: r.mask_image is not None and r.inpaint_full_res, always=True, example=16,
           context={**MASKED, "inpaint_full_res": True}),
    # hires fix (A1111's txt2img second pass)
    Option("enable_hr", bool, False, None, "--hires", "enable_hr", "hires fix (in the infotext as its Hires "
           "fields)", mode="txt2img", example=True),
    Option("hr_denoising_strength", float, 0.7, "Denoising strength", "--hires-denoise", "denoising_strength",
           "second-pass denoising strength", bounds=(0.0, 1.0), mode="txt2img", when=_hires, always=True,
           example=0.45, context={"enable_hr": True}),
    Option("hr_scale", float, 2.0, "Hires upscale", "--hires-scale", "hr_scale", "upscale factor",
           bounds=(1.0, 4.0), mode="txt2img", when=_with_hr_resize, always=True, example=1.5,
           context={"enable_hr": True}),
    Option("hr_resize", tuple, None, "Hires resize", "--hires-resize", ("hr_resize_x", "hr_resize_y"),
           "or a target WIDTHxHEIGHT (one side 0: the other follows the aspect ratio)", mode="txt2img", when=_hires,
           from_api=_pair_or_none(0, 0, either=True),
           example=(128, 128), context={"enable_hr": True}),
    Option("hr_steps", int, 0, "Hires steps", "--hires-steps", "hr_second_pass_steps",
           "second-pass steps (0: the first pass's)", bounds=(0, 150), mode="txt2img", when=_hires,
           written=lambda v, r, c: v or None, example=5, context={"enable_hr": True}),
    Option("hr_upscaler", str, "Latent", "Hires upscaler", "--hires-upscaler", "hr_upscaler",
           '"Latent" (default), "Latent (bicubic antialiased)", ..., "Lanczos", "Nearest", or a model upscaler of the '
           'models folder ("R-ESRGAN 4x+ Anime6B", "4x-UltraSharp": `sd1kit upscale --list`)', mode="txt2img",
           when=_hires, always=True, example="Lanczos", context={"enable_hr": True}),
    Option("upscaler_tile", int, None, None, "--upscaler-tile", "override_settings.ESRGAN_tile",
           "model upscalers' tile in pixels (A1111's ESRGAN_tile; default: the upscaler folder's A1111 default, 192, "
           "ScuNET 256; 0: untiled); not in the infotext, as in A1111", bounds=(0, 4096), example=128),
    Option("upscaler_tile_overlap", int, None, None, "--upscaler-tile-overlap",
           "override_settings.ESRGAN_tile_overlap", "overlap of the model upscalers' tiles in pixels (A1111's "
           "ESRGAN_tile_overlap; default 8); not in the infotext", bounds=(0, 512), example=16),
    Option("hr_sampler", str, None, "Hires sampler", "--hires-sampler", "hr_sampler_name",
           "second-pass sampler (default: the first's)", mode="txt2img", when=_hires,
           from_api=_or_none("Use same sampler"), example="Euler",
           context={"enable_hr": True}),
    Option("hr_schedule", str, None, "Hires schedule type", "--hires-schedule", "hr_scheduler",
           "second-pass schedule type", mode="txt2img", when=_hires, from_api=_or_none("Use same scheduler"),
           example="Karras",
           context={"enable_hr": True}),
    Option("hr_prompt", str, None, "Hires prompt", "--hires-prompt", "hr_prompt", "second-pass prompt",
           mode="txt2img", when=_hires, from_api=_or_none(), example="a castle, detailed",
           context={"enable_hr": True}),
    Option("hr_negative_prompt", str, None, "Hires negative prompt", "--hires-negative", "hr_negative_prompt",
           "second-pass negative prompt", mode="txt2img", when=_hires, from_api=_or_none(), example="blurry",
           context={"enable_hr": True}),
)

BY_ATTR = {o.attr: o for o in OPTIONS}

# The rows grouped as A1111's UI groups them (the web page builds its controls from this; a test checks that every
# row is in exactly one group)
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Generation", ("sampler", "schedule", "steps", "size", "batch_count", "batch_size", "cfg_scale", "seed")),
    ("Variation seed", ("subseed", "subseed_strength", "seed_resize_from")),
    ("img2img", ("denoising_strength",)),
    ("Inpaint", ("mask_blur", "invert_mask", "masked_content", "inpaint_full_res", "inpaint_padding",
                 "mask_weight")),
    ("Hires. fix", ("enable_hr", "hr_upscaler", "hr_scale", "hr_resize", "hr_steps", "hr_denoising_strength",
                    "hr_sampler", "hr_schedule", "hr_prompt", "hr_negative_prompt", "upscaler_tile",
                    "upscaler_tile_overlap")),
    ("Model", ("clip_skip", "prediction", "zero_terminal_snr", "cfg_rescale", "ensd", "rng", "emphasis")),
    ("Sampler parameters", ("eta", "s_noise", "s_min_uncond")),
    ("Speed", ("token_merging", "deepcache", "vae_decoder", "tiled_vae", "per_image")),
    ("Compatibility", ("old_prompt_editing", "pad_conds", "pad_conds_v0", "downcast_alphas_cumprod")),
)
GROUP_OF = {attr: group for group, attrs in GROUPS for attr in attrs}


def infotext_params(request, ctx: WriteContext, late: bool | None = None) -> dict:
    """The options' infotext parameters for one picture, in table order (None: left out); `late`: only the rows
    written after the modifiers' fields (True) or only the others (False)."""
    out = {}
    for o in OPTIONS:
        if o.infotext is None or (late is not None and o.late != late):
            continue
        value = o.infotext_value(request, ctx)
        if value is not None:
            out[o.key(ctx)] = value
    return out


def _reads(option: Option, fields: dict) -> bool:
    hires = any(k in fields or f"{k}-1" in fields for k in HIRES_KEYS)
    if option.attr == "denoising_strength":
        return not hires
    if option.attr == "hr_denoising_strength":
        return hires
    return True


def options_from_infotext(fields: dict, where: str = "picture") -> dict:
    """Request fields from a parsed infotext (`metadata.infotext.parse_infotext`), by the table."""
    values = {}
    for option in OPTIONS:
        key = option.infotext
        if key is None or not _reads(option, fields):
            continue
        if option.alt_key is not None and option.alt_key[0] in fields:
            key = option.alt_key[0]
        try:
            if option.kind is tuple and f"{key}-1" in fields:  # the parser splits "WxH" into -1 / -2
                values.update(option.changes((int(fields[f"{key}-1"]), int(fields[f"{key}-2"]))))
            elif key in fields:
                values.update(option.changes(option.from_infotext(fields[key])))
        except (ValueError, Sd1kitError):
            raise Sd1kitError(where, f"parameter {key!r} has an unreadable value {fields.get(key)!r}") from None
    if any(k in fields or f"{k}-1" in fields for k in HIRES_KEYS):
        values["enable_hr"] = True
    return values
