"""A1111's sampler and schedule names (1.10 tables, `modules/sd_samplers_kdiffusion.py`,
`sd_samplers_timesteps.py`, `sd_samplers_lcm.py`, `sd_schedulers.py`, in A1111's order), combined names
("DPM++ 2M Karras", "Euler a sgm_uniform", "Euler a Automatic"), and lookups that suggest the nearest name."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import torch

from sd1kit.errors import Sd1kitError
from sd1kit.sampling import dpm_solver as D
from sd1kit.sampling import lcm as L
from sd1kit.sampling import restart as R
from sd1kit.sampling import samplers as S
from sd1kit.sampling import timesteps as T
from sd1kit.sampling import unipc as U
from sd1kit.sampling import schedules as K


@dataclass(frozen=True)
class SamplerSpec:
    name: str  # A1111 display name
    id: str  # k-diffusion-style id
    function: Callable
    aliases: tuple[str, ...] = ()
    scheduler: str | None = None  # what "Automatic" means for this sampler
    discard_penultimate: bool = False
    second_order: bool = False  # two model calls a step: A1111 schedules prompts over 2x steps
    noise: str | None = None  # "rng" (fresh per-step noise, ENSD applies) or "brownian" (SDE)
    options: dict = field(default_factory=dict)
    per_image: bool = False  # step sizes depend on the whole batch: run image by image so seeds reproduce
    timesteps: bool = False  # A1111's timestep samplers: their own discrete timesteps, no schedule choice
    sigma_grid: Callable | None = None  # (steps, schedule) -> sigmas, where the sampler fixes its own
    denoiser: str = "standard"  # "lcm": the model is seen through LCM's timesteps and scalings


SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("DPM++ 2M", "dpmpp_2m", S.sample_dpmpp_2m, ("k_dpmpp_2m",), scheduler="karras"),
    SamplerSpec("DPM++ SDE", "dpmpp_sde", S.sample_dpmpp_sde, ("k_dpmpp_sde",), scheduler="karras",
                second_order=True, noise="brownian"),
    SamplerSpec("DPM++ 2M SDE", "dpmpp_2m_sde", S.sample_dpmpp_2m_sde, ("k_dpmpp_2m_sde",), scheduler="exponential",
                noise="brownian"),
    SamplerSpec("DPM++ 2M SDE Heun", "dpmpp_2m_sde_heun", S.sample_dpmpp_2m_sde, ("k_dpmpp_2m_sde_heun",),
                scheduler="exponential", noise="brownian", options={"solver_type": "heun"}),
    SamplerSpec("DPM++ 2S a", "dpmpp_2s_ancestral", S.sample_dpmpp_2s_ancestral, ("k_dpmpp_2s_a",),
                scheduler="karras", second_order=True, noise="rng"),
    SamplerSpec("DPM++ 3M SDE", "dpmpp_3m_sde", S.sample_dpmpp_3m_sde, ("k_dpmpp_3m_sde",), scheduler="exponential",
                discard_penultimate=True, noise="brownian"),
    SamplerSpec("Euler a", "euler_ancestral", S.sample_euler_ancestral, ("k_euler_a", "k_euler_ancestral"), noise="rng"),
    SamplerSpec("Euler", "euler", S.sample_euler, ("k_euler",)),
    SamplerSpec("LMS", "lms", S.sample_lms, ("k_lms",)),
    SamplerSpec("Heun", "heun", S.sample_heun, ("k_heun",), second_order=True),
    SamplerSpec("DPM2", "dpm_2", S.sample_dpm_2, ("k_dpm_2",), scheduler="karras", discard_penultimate=True,
                second_order=True),
    SamplerSpec("DPM2 a", "dpm_2_ancestral", S.sample_dpm_2_ancestral, ("k_dpm_2_a",), scheduler="karras",
                discard_penultimate=True, second_order=True, noise="rng"),
    SamplerSpec("DPM fast", "dpm_fast", D.sample_dpm_fast, ("k_dpm_fast",), noise="rng"),
    SamplerSpec("DPM adaptive", "dpm_adaptive", D.sample_dpm_adaptive, ("k_dpm_ad",), noise="rng", per_image=True),
    SamplerSpec("Restart", "restart", R.sample_restart, ("restart",), scheduler="karras", second_order=True,
                noise="rng"),
    SamplerSpec("DDIM", "ddim", T.sample_ddim, ("ddim",), noise="rng", timesteps=True, options={"eta": 0.0},
                sigma_grid=T.timestep_sigmas),
    SamplerSpec("DDIM CFG++", "ddim_cfgpp", T.sample_ddim_cfgpp, ("ddim_cfgpp",), noise="rng", timesteps=True,
                options={"eta": 0.0}, sigma_grid=T.timestep_sigmas),
    SamplerSpec("PLMS", "plms", T.sample_plms, ("plms",), timesteps=True, sigma_grid=T.timestep_sigmas),
    SamplerSpec("UniPC", "unipc", U.sample_unipc, ("unipc",), timesteps=True, sigma_grid=U.unipc_sigmas),
    # A1111 runs LCM as a k-diffusion sampler: any schedule type, over the sigmas of LCM's 50 timesteps
    SamplerSpec("LCM", "lcm", S.sample_lcm, ("k_lcm",), noise="rng", denoiser="lcm"),
)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str  # A1111 display name
    id: str
    function: Callable | None  # (n, sigma_min, sigma_max[, schedule]) -> sigmas
    needs_model: bool = False
    aliases: tuple[str, ...] = ()


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec("Automatic", "automatic", None),
    ScheduleSpec("Uniform", "uniform", K.get_sigmas_uniform, needs_model=True),
    ScheduleSpec("Karras", "karras", K.get_sigmas_karras),
    ScheduleSpec("Exponential", "exponential", K.get_sigmas_exponential),
    ScheduleSpec("Polyexponential", "polyexponential", K.get_sigmas_polyexponential),
    ScheduleSpec("SGM Uniform", "sgm_uniform", K.get_sigmas_sgm_uniform, needs_model=True, aliases=("SGMUniform",)),
    ScheduleSpec("KL Optimal", "kl_optimal", K.get_sigmas_kl_optimal),
    ScheduleSpec("Align Your Steps", "align_your_steps", K.get_sigmas_align_your_steps),
    ScheduleSpec("Simple", "simple", K.get_sigmas_simple, needs_model=True),
    ScheduleSpec("Normal", "normal", K.get_sigmas_normal, needs_model=True),
    ScheduleSpec("DDIM", "ddim", K.get_sigmas_ddim, needs_model=True),
    ScheduleSpec("Beta", "beta", K.get_sigmas_beta),
)


def _index(specs) -> dict[str, object]:
    out = {}
    for spec in specs:
        for key in (spec.name, spec.id, *spec.aliases):
            out[key.lower()] = spec
    return out


_SAMPLERS = _index(SAMPLERS)
_SCHEDULES = _index(SCHEDULES)


def _lookup(table: dict, name: str, what: str):
    hit = table.get(name.strip().lower())
    if hit is None:
        close = difflib.get_close_matches(name.strip().lower(), list(table), n=1)
        hint = f"; did you mean {table[close[0]].name!r}?" if close else ""
        raise Sd1kitError(what, f"unknown {what} {name!r}{hint}")
    return hit


def _split_combined(name: str) -> tuple[SamplerSpec, ScheduleSpec] | None:
    """"DPM++ 2M Karras", "Euler a sgm_uniform", "Euler a Automatic": a sampler name, a space, then a schedule's
    label, id or alias (A1111's `sd_samplers.get_sampler_and_scheduler` strips these); None if it is not one."""
    text = name.strip()
    for sched in SCHEDULES:
        for label in (sched.name, sched.id, *sched.aliases):
            if text.lower().endswith(" " + label.lower()):
                base = text[: -len(label) - 1].strip().lower()
                if base in _SAMPLERS:
                    return _SAMPLERS[base], sched
    return None


def _named(name: str, schedule: str | None) -> tuple[SamplerSpec, ScheduleSpec]:
    """The sampler and the schedule as named (the schedule may be "Automatic")."""
    spec = _SAMPLERS.get(name.strip().lower())
    combined = _split_combined(name) if spec is None else None
    if combined is not None:
        # as in A1111, a schedule in the sampler's name wins over the schedule type given beside it
        return combined
    if spec is None:
        spec = _lookup(_SAMPLERS, name, "sampler")
    return spec, _lookup(_SCHEDULES, schedule or "Automatic", "schedule type")


def resolve_sampler(name: str, schedule: str | None = None) -> tuple[SamplerSpec, ScheduleSpec]:
    """(sampler, schedule) for A1111 names: display names, ids and aliases ("k_euler_a", "ddim_cfgpp"), any case,
    and combined names of a sampler and a schedule label or id ("DPM++ 2M Karras", "DPM++ 2M kl_optimal",
    "Euler a Automatic"); a schedule in the name wins over `schedule`, as in A1111.

    A schedule of None or "Automatic" becomes the sampler's own default, as in A1111.
    """
    spec, sched = _named(name, schedule)
    if sched.id == "automatic":
        sched = _lookup(_SCHEDULES, spec.scheduler or "Uniform", "schedule type")
    return spec, sched


def a1111_names(name: str, schedule: str | None = None) -> tuple[str, str]:
    """The (sampler name, schedule type label) A1111 holds for these names, as its `get_sampler_and_scheduler`
    gives them: a schedule that is the sampler's own default becomes "Automatic"
    ("DPM++ 2M Karras" -> ("DPM++ 2M", "Automatic"); "Euler a sgm_uniform" -> ("Euler a", "SGM Uniform"))."""
    spec, sched = _named(name, schedule)
    if sched.id != "automatic" and spec.scheduler == sched.id:
        sched = SCHEDULES[0]
    return spec.name, sched.name


def schedule_view(sampler: SamplerSpec, model_schedule: K.DiscreteSchedule) -> K.DiscreteSchedule:
    """The discrete schedule the sampler sees the model through: LCM's 50 timesteps for LCM (A1111's
    LCMCompVisDenoiser, whose sigmas every schedule type then spans), else the model's own."""
    return L.LCMSchedule(model_schedule) if sampler.denoiser == "lcm" else model_schedule


def get_sigmas(sampler: SamplerSpec, schedule: ScheduleSpec, steps: int, model_schedule: K.DiscreteSchedule,
               discard_penultimate: bool | None = None, **options):
    """The sigmas A1111 would sample `steps` steps with (`KDiffusionSampler.get_sigmas`): the schedule type over
    the sigma range of the schedule the sampler sees the model through (see `schedule_view`)."""
    if sampler.sigma_grid is not None:
        return sampler.sigma_grid(steps, model_schedule)
    model_schedule = schedule_view(sampler, model_schedule)
    discard = sampler.discard_penultimate if discard_penultimate is None else discard_penultimate
    n = steps + 1 if discard else steps
    lo, hi = model_schedule.sigma_min, model_schedule.sigma_max
    if schedule.needs_model:
        sigmas = schedule.function(n, lo, hi, model_schedule)
    else:
        sigmas = schedule.function(n, lo, hi, **options)
    return K.discard_penultimate(sigmas) if discard else sigmas


def initial_latent(sampler: SamplerSpec, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """txt2img's starting latent: noise * sigma_max, or for the timestep samplers the latent whose VP form is
    the noise itself, as A1111 starts them."""
    if sampler.timesteps:
        return noise * (1 + sigmas[0] ** 2) ** 0.5
    return noise * sigmas[0]
