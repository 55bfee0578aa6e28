"""Running a sampler the way A1111 does: its noise source, eta, progress callbacks and clean interruption."""

from __future__ import annotations

import inspect
from typing import Callable

import torch

from sd1kit.rng import ImageRNG
from sd1kit.sampling.denoisers import CFGDenoiser
from sd1kit.sampling.noise import BrownianNoise, RNGNoise
from sd1kit.sampling.registry import SamplerSpec

ProgressCallback = Callable[[int, float, torch.Tensor], None]  # (step, sigma, x0-hat)


class Interrupted(Exception):
    """Raised between steps when the caller asked to stop; `run_sampler` returns the last x0-hat."""


def sampler_noise(spec: SamplerSpec, x: torch.Tensor, sigmas: torch.Tensor, rng: ImageRNG | None,
                  seeds: list[int] | None):
    if spec.noise == "brownian":
        if seeds is None:
            raise ValueError(f"{spec.name} needs the image seeds for its Brownian-tree noise")
        positive = sigmas[sigmas > 0]
        return BrownianNoise(x, positive.min(), sigmas.max(), seeds)
    return RNGNoise(rng, x.dtype) if rng is not None else None


def run_sampler(spec: SamplerSpec, model, x: torch.Tensor, sigmas: torch.Tensor, rng: ImageRNG | None = None,
                seeds: list[int] | None = None, eta: float | None = None, callback: ProgressCallback | None = None,
                should_stop: Callable[[], bool] | None = None, schedule=None, **options) -> torch.Tensor:
    """Sample from `x` (already scaled to sigmas[0]) with `spec`; stops cleanly when should_stop() is true.

    eta defaults to 1, A1111's "Eta for ancestral samplers", for every sampler that takes one.
    """
    if spec.per_image and x.shape[0] > 1:
        # each image runs whole with its own guidance (a CFGDenoiser's subset: the image's conds, its index for
        # the UNet's per-image state); the batch's denoiser then stands where its images' runs ended
        parts, subsets = [], []
        for i in range(x.shape[0]):
            sub = model.subset(i) if hasattr(model, "subset") else model
            subsets.append(sub)
            parts.append(run_sampler(spec, sub, x[i:i + 1], sigmas, None if rng is None else rng.subset(i),
                                     None if seeds is None else seeds[i:i + 1], eta, callback, should_stop, schedule,
                                     **options))
        if isinstance(model, CFGDenoiser):
            model.step = max(sub.step for sub in subsets)
            if all(sub.last_uncond_denoised is not None for sub in subsets):
                model.last_uncond_denoised = torch.cat([sub.last_uncond_denoised for sub in subsets])
        return torch.cat(parts)
    params = inspect.signature(spec.function).parameters
    kwargs = {k: v for k, v in {**spec.options, **options}.items() if k in params}
    if "eta" in params:
        kwargs["eta"] = kwargs.get("eta", 1.0) if eta is None else eta
    if "schedule" in params:
        if schedule is None:
            raise ValueError(f"{spec.name} needs the model's discrete schedule")
        kwargs["schedule"] = schedule
    noise = sampler_noise(spec, x, sigmas, rng, seeds)
    if noise is None and spec.noise is not None and kwargs.get("eta", 1.0):
        raise ValueError(f"{spec.name} needs an ImageRNG for its per-step noise")
    last = {"denoised": x}

    def report(d: dict) -> None:
        last["denoised"] = d["denoised"]
        if callback is not None:
            callback(d["i"], float(d["sigma"]), d["denoised"])
        if should_stop is not None and should_stop():
            raise Interrupted

    try:
        return spec.function(model, x, sigmas, callback=report, noise_sampler=noise, **kwargs)
    except Interrupted:
        return last["denoised"]
