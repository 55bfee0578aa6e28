"""The generation plan: a request resolved once, in the library, into everything a run needs.

    surface (CLI / API / --from / batch) -> GenerationRequest -> plan(request, model) -> run(plan) -> Result

`plan` applies the model's own defaults in one chain (explicit option > picture > yaml > metadata > marker keys >
catalog record > probe > default), records where each setting came from, builds one immutable `Pass` per pass
(first, hires), the ordered UNet modifiers (refusing a combination before any work) and the infotext. Surfaces
never decide a setting; `--dry-run` prints `plan.as_json()`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.metadata.infotext import a1111_order, create_infotext
from sd1kit.pipeline import hires
from sd1kit.pipeline.model import LoadedModel
from sd1kit.pipeline.options import BY_ATTR, OPTIONS, Resolved, WriteContext, infotext_params
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.prompts.extra_networks import parse_extra_networks
from sd1kit.prompts.schedule import prompt_schedule
from sd1kit.sampling.registry import SamplerSpec, ScheduleSpec, resolve_sampler
from sd1kit.sampling.schedules import DiscreteSchedule, sd1_alphas_cumprod

SEED_MAX = 4294967294
# what a model may say of itself (model.defaults); these request fields default to None (= unset), so a value a
# library caller gives is explicit even when it equals the usual default
MODEL_SETTINGS = ("prediction", "zero_terminal_snr", "clip_skip", "cfg_rescale", "size")
FALLBACK = {"prediction": "epsilon", "zero_terminal_snr": False, "clip_skip": 1, "cfg_rescale": 0.0, "size": (512, 512)}


@dataclass(frozen=True)
class Pass:
    """One sampling pass: what it samples with, over which steps, from what, at which size."""

    name: str  # "first" or "hires"
    sampler: SamplerSpec
    schedule: ScheduleSpec  # the sigma schedule type (Karras, Exponential, ...)
    steps: int
    prompt: str  # without extra-network tags
    negative: str
    prompt_steps: int  # the steps prompt editing counts over (2x for second-order samplers, as A1111)
    hires_steps: int | None  # the hires pass's count, for prompts scheduled over both passes
    size: tuple[int, int]  # pixels
    denoise: float | None  # None: from noise
    init: str | None  # "picture" (img2img), "first pass" (hires), None
    upscaler: str | None = None
    upscaler_file: Any = None  # hires by a model upscaler: its upscalers.UpscalerFile
    upscaler_tiles: tuple = (None, None)  # its tile and overlap (None: the folder's A1111 defaults)
    masked: bool = False

    def as_json(self, old_timelines: bool = False) -> dict:
        schedule = prompt_schedule(self.prompt, self.prompt_steps, self.hires_steps, old_timelines)
        out = {"name": self.name, "sampler": self.sampler.name, "schedule_type": self.schedule.name,
               "steps": self.steps, "size": list(self.size), "denoise": self.denoise, "init": self.init,
               "upscaler": self.upscaler, "masked": self.masked, "prompt_schedule": [
                   {"until_step": until, "text": text} for until, text in schedule]}
        if self.upscaler_file is not None:
            out["upscaler_file"] = str(self.upscaler_file.path)
        return out


@dataclass(frozen=True)
class GenerationPlan:
    request: GenerationRequest  # every option holds its resolved value; seeds resolved
    settings: dict  # option attr -> Resolved
    model: LoadedModel  # with an external VAE in place
    noise_schedule: DiscreteSchedule
    prediction: str
    passes: tuple[Pass, ...]
    modifiers: tuple  # ordered modifiers.Modifier
    embeddings: object = None  # prompts.embeddings.EmbeddingDatabase
    used_embeddings: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)  # model-level infotext fields (Model, VAE, TI hashes)
    warnings: tuple[str, ...] = ()

    @property
    def first(self) -> Pass:
        return self.passes[0]

    @property
    def hires(self) -> Pass | None:
        return self.passes[1] if len(self.passes) > 1 else None

    def seeds(self, batch: int) -> tuple[list[int], list[int]]:
        r = self.request
        offset = batch * r.batch_size
        return ([r.seed + offset + i for i in range(r.batch_size)],
                [r.subseed + offset + i for i in range(r.batch_size)])

    def infotext(self, seed: int, subseed: int, skip: frozenset = frozenset()) -> str:
        """The infotext of the picture of this seed, from the plan alone; modifiers of the kinds in `skip` (those
        that did not run) are left out."""
        r, first = self.request, self.first
        ctx = WriteContext(seed, subseed, first.size, first.sampler, _schedule_label(r, first),
                           self.model.modules.unet_config.in_channels == 9)
        params = {**infotext_params(r, ctx, late=False), **self.params}
        params.pop("TI hashes", None)  # A1111 writes it after the networks' fields
        for m in self.modifiers:
            for key, value in m.params().items():
                if m.kind in skip:  # did not run: neither its own fields nor the table's row of the same key
                    params.pop(key, None)
                else:
                    params[key] = value
        if "TI hashes" in self.params:
            params["TI hashes"] = self.params["TI hashes"]
        runtime = self.model.runtime.params() if self.model.runtime else {}
        params = {**params, **infotext_params(r, ctx, late=True), **r.extra, **runtime,
                  "Version": f"sd1kit {__version__}"}
        return create_infotext(r.prompt, r.negative_prompt, a1111_order(params))

    def as_json(self) -> dict:
        seed, subseed = self.seeds(0)
        return {
            "model": {"name": self.model.name, "path": str(self.model.path) if self.model.path else None,
                      "hash": self.model.short_hash},
            "runtime": self.model.runtime.as_json() if self.model.runtime else None,
            "settings": {k: v.as_json() for k, v in self.settings.items()},
            "prediction": self.prediction,
            "passes": [p.as_json(self.request.old_prompt_editing) for p in self.passes],
            "modifiers": [m.as_json() for m in self.modifiers],
            "seeds": [s for b in range(self.request.batch_count) for s in self.seeds(b)[0]],
            "infotext": self.infotext(seed[0], subseed[0]),
            "warnings": list(self.warnings),
            "memory": self.memory(),
        }

    def memory(self) -> dict:
        """What the job adds to the loaded model at its peak (estimated), and what the machine has free, GiB."""
        from sd1kit.pipeline.memory import GIB, available, job_bytes

        return {"job_gib": round(job_bytes(self) / GIB, 2), "free_gib": round(available() / GIB, 2)}


def _schedule_label(request: GenerationRequest, first: Pass) -> str:
    """What A1111's UI writes: "Automatic" stays (the sampler's default everywhere), as does a name ending in
    " Automatic"; a schedule named, or implied by a legacy name ("DPM++ 2M Karras"), is written out."""
    name = request.sampler.strip().lower()
    plain = name in (first.sampler.name.lower(), first.sampler.id, *first.sampler.aliases)
    automatic = (request.schedule or "Automatic").strip().lower() == "automatic"  # the label or its id (API)
    if automatic and (plain or name.endswith(" automatic")):
        return "Automatic"
    return first.schedule.name


def plan(request: GenerationRequest, model: LoadedModel) -> GenerationPlan:
    """Resolve `request` against `model` into a plan; refuses (Sd1kitError, one line) before any work."""
    warnings: list[str] = list(model.warnings)
    check_options(request)
    request, settings = resolve_settings(request, model, warnings)
    spec, sched = resolve_sampler(request.sampler, request.schedule)
    size = _round_size(request, warnings)
    model, vae_params = _with_vae(model, request)
    text, networks = parse_extra_networks(request.prompt)
    neg_text, neg_networks = parse_extra_networks(request.negative_prompt)
    if neg_networks:
        warnings.append("extra networks in the negative prompt are not applied; their tags were removed ("
                        + ", ".join(n.tag for n in neg_networks) + ")")
    _check_inputs(request)
    img2img = request.init_image is not None
    first = Pass(name="first", sampler=spec, schedule=sched, steps=request.steps, prompt=text, negative=neg_text,
                 prompt_steps=_prompt_steps(request.steps, spec), hires_steps=None, size=size,
                 denoise=request.denoising_strength if img2img else None, init="picture" if img2img else None,
                 masked=request.mask_image is not None)
    passes = (first,) if not request.enable_hr else (first, _hires_pass(request, first))
    from sd1kit.pipeline.build_modifiers import build_modifiers, embeddings_for

    hires_networks = (parse_extra_networks(request.hr_prompt)[1] if request.enable_hr and request.hr_prompt is not None
                      else None)
    modifiers = build_modifiers(request, model, networks, warnings, hires_networks)
    if model.runtime is not None and model.runtime.backend == "openvino":
        from sd1kit.pipeline.openvino_backend import check_modifiers

        check_modifiers(modifiers)
    embeddings, used = embeddings_for(request, model, passes, warnings)
    ztsnr = bool(settings["zero_terminal_snr"].value)
    schedule = DiscreteSchedule(sd1_alphas_cumprod(zero_terminal_snr=ztsnr,
                                                   downcast=request.downcast_alphas_cumprod))
    params = {"Model hash": model.short_hash, "Model": model.name, **vae_params}
    if used:  # A1111's "TI hashes": name: first 12 hex of the file's sha256
        params["TI hashes"] = ", ".join(f"{n}: {embeddings.embeddings[n].short_hash}" for n in used)
    result = GenerationPlan(request=request, settings=settings, model=model, noise_schedule=schedule,
                            prediction=settings["prediction"].value, passes=passes, modifiers=tuple(modifiers),
                            embeddings=embeddings, used_embeddings=used, params=params, warnings=tuple(warnings))
    for m in modifiers:
        why = m.check(result)
        if why:
            raise Sd1kitError(m.kind, why)
    return result


def check_options(request: GenerationRequest) -> None:
    """Every option within its row's bounds and choices."""
    for option in OPTIONS:
        option.check(option.get(request), option.attr)
    if request.prediction is not None and request.prediction not in ("epsilon", "v"):
        raise Sd1kitError("prediction", f"epsilon or v, not {request.prediction!r}")


def _explicit(request: GenerationRequest, attr: str) -> str | None:
    """Where `attr` was set: its recorded source, "request" for a value other than the default, else None."""
    names = ("width", "height") if attr == "size" else (attr,)
    for name in names:
        if name in request.sources:
            return request.sources[name]
    option = BY_ATTR[attr]
    value = option.get(request)
    if attr in MODEL_SETTINGS:
        return "request" if value is not None and value != (None, None) else None
    return "request" if value != option.default else None


def resolve_settings(request: GenerationRequest, model: LoadedModel,
                     warnings: list[str]) -> tuple[GenerationRequest, dict]:
    """The request with the model's defaults filled in where no one set the option, and each option's source."""
    settings, changes = {}, {}
    for option in OPTIONS:
        source = _explicit(request, option.attr)
        value = option.get(request)
        own = model.defaults.get(option.attr)
        if option.attr == "size" and request.init_image is not None:
            own = None  # img2img: the init picture's size is the user's choice, not the model's
        if source is None and own is not None:
            value, source = own.value, own.source
            if own.note:
                warnings.append(own.note)
        elif option.attr in MODEL_SETTINGS and source is None:
            value = FALLBACK[option.attr]
        elif option.attr == "size":  # one side given: the other is A1111's 512
            value = tuple(512 if v is None else v for v in value)
        changes.update(option.changes(value))
        settings[option.attr] = Resolved(value, source or "default")
    said = _catalog_said(settings)
    if said:
        warnings.append(said)
    seed, subseed = resolve_seed(request.seed), resolve_seed(request.subseed)
    given = lambda v: v is not None and v >= 0  # noqa: E731
    settings["seed"] = Resolved(seed, settings["seed"].source if given(request.seed) else "random")
    settings["subseed"] = Resolved(subseed, settings["subseed"].source if given(request.subseed) else "random")
    request = replace(request, **{**changes, "seed": seed, "subseed": subseed})
    return _schedule_compatible(request, settings, warnings), settings


def _schedule_compatible(request: GenerationRequest, settings: dict, warnings: list[str]) -> GenerationRequest:
    """Downcast alphas_cumprod and zero terminal SNR cannot go together (A1111's sigma_max becomes infinite):
    a zero terminal SNR only the model suggests gives way (A1111 before 1.7 had none); two explicit ones refuse."""
    if not (request.zero_terminal_snr and request.downcast_alphas_cumprod):
        return request
    z, d = settings["zero_terminal_snr"], settings["downcast_alphas_cumprod"]
    if _explicit(request, "zero_terminal_snr") is None or not _user_source(z.source):
        warnings.append(f"zero terminal SNR ({z.source}) left off: downcast alphas_cumprod ({d.source}) cannot "
                        "be combined with it")
        settings["zero_terminal_snr"] = Resolved(False, f"off for downcast alphas_cumprod ({d.source})")
        return replace(request, zero_terminal_snr=False)
    raise Sd1kitError("downcast alphas_cumprod", f"({d.source}) cannot be combined with zero terminal SNR "
                      f"({z.source}): A1111's sigma_max becomes infinite; set one of them off")


def _user_source(source: str) -> bool:
    return source.split(":")[0] in ("cli", "api", "picture", "request", "batch")


_SAID = {"prediction": lambda v: "v-prediction" if v == "v" else None,
         "zero_terminal_snr": lambda v: "zero terminal SNR" if v else None,
         "clip_skip": lambda v: f"clip skip {v}" if v > 1 else None,
         "cfg_rescale": lambda v: f"CFG rescale {v:g}" if v else None}


def _catalog_said(settings: dict) -> str | None:
    """What the catalog's record decided, in words ("EasyFluff (catalog): using v-prediction, clip skip 2")."""
    from sd1kit.catalog.catalog import by_id

    said, record = [], None
    for attr, words in _SAID.items():
        r = settings[attr]
        if r.source.startswith("catalog:") and words(r.value):
            said.append(words(r.value))
            record = by_id().get(r.source.split(":", 1)[1])
    if not said:
        return None
    return f"{record.name if record else 'catalog'} (catalog): using {', '.join(said)}; set the option to override"


def resolve_seed(seed: int | None) -> int:
    return random.randrange(SEED_MAX) if seed is None or seed < 0 else int(seed)


def _round_size(request: GenerationRequest, warnings: list[str]) -> tuple[int, int]:
    w, h = request.width - request.width % 8, request.height - request.height % 8
    if (w, h) != (request.width, request.height):
        warnings.append(f"size {request.width}x{request.height} rounded down to {w}x{h} (multiples of 8)")
    if w < 64 or h < 64:
        raise Sd1kitError("size", f"{request.width}x{request.height} is too small (at least 64x64)")
    return w, h


def _prompt_steps(steps: int, spec: SamplerSpec) -> int:
    return steps * (2 if spec.second_order else 1)  # A1111's fix for second-order samplers


def _check_inputs(request: GenerationRequest) -> None:
    for what, value in (("init image", request.init_image), ("mask", request.mask_image)):
        if isinstance(value, (str, Path)) and not Path(value).is_file():
            raise Sd1kitError(value, f"no such file (the {what})")
    if request.mask_image is not None and request.init_image is None:
        raise Sd1kitError("mask", "a mask needs an init image (--init) to paint into")


def _hires_pass(request: GenerationRequest, first: Pass) -> Pass:
    spec, sched = resolve_sampler(request.hr_sampler or request.sampler,
                                  request.hr_schedule or (request.schedule if not request.hr_sampler else None))
    steps = request.hr_steps or request.steps
    text = parse_extra_networks(request.hr_prompt)[0] if request.hr_prompt is not None else first.prompt
    negative = (parse_extra_networks(request.hr_negative_prompt)[0] if request.hr_negative_prompt is not None
                else first.negative)
    tw, th = hires.target_size(*first.size, request.hr_scale, request.hr_resize)
    return Pass(name="hires", sampler=spec, schedule=sched, steps=steps, prompt=text, negative=negative,
                prompt_steps=first.prompt_steps, hires_steps=_prompt_steps(steps, spec), size=(tw - tw % 8, th - th % 8),
                denoise=request.hr_denoising_strength, init="first pass", upscaler=request.hr_upscaler,
                upscaler_file=hires.check_upscaler(request.hr_upscaler, request.upscaler_models_dir),
                upscaler_tiles=(request.upscaler_tile, request.upscaler_tile_overlap))


def _with_vae(model: LoadedModel, request: GenerationRequest) -> tuple[LoadedModel, dict]:
    """The model with the request's external VAE in place of its own, and the infotext keys naming it."""
    if not request.vae:
        return model, {}
    from sd1kit.pipeline.vae import load_vae

    external = load_vae(request.vae, model.device, model.dtype)
    modules = replace(model.modules, vae=external.module)
    if model.runtime is not None and model.runtime.backend == "openvino":
        from sd1kit.pipeline.openvino_backend import openvino_modules, precision_of

        modules = openvino_modules(modules, ("vae_decoder", "vae_encoder"), precision_of(model.runtime.dtype))
    return replace(model, modules=modules), {"VAE hash": external.short_hash, "VAE": external.name}


def embeddings_folder(request: GenerationRequest) -> Path | None:
    import os

    folder = request.embeddings_dir or Path(os.environ.get("SD1KIT_HOME", ".")) / "embeddings"
    return Path(folder) if request.embeddings_dir or Path(folder).is_dir() else None
