"""Restart sampling (Xu et al. 2023, arXiv 2306.14878) with A1111's automatic restart schedule
(`modules/sd_samplers_extra.py`): Heun steps, and from 20 steps on, jumps from sigma ~ 0.1 back up to
sigma ~ 2 with fresh noise, re-descending on a Karras sub-schedule."""

from __future__ import annotations

import torch

from sd1kit.sampling.samplers import _d, _ones, _report, heun_step
from sd1kit.sampling.schedules import get_sigmas_karras


def _restart_plan(sigmas: torch.Tensor) -> tuple[torch.Tensor, dict[int, tuple[int, int, float]]]:
    steps = len(sigmas) - 1
    if steps < 20:
        return sigmas, {}
    restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
    sigmas = get_sigmas_karras(steps - restart_steps * restart_times, float(sigmas[-2]), float(sigmas[0])).to(sigmas)
    at = int(torch.argmin((sigmas - 0.1).abs()))
    return sigmas, {at: (restart_steps + 1, restart_times, 2.0)}


def _step_list(sigmas: torch.Tensor, plan: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    steps = []
    for i in range(len(sigmas) - 1):
        steps.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in plan:
            n, times, restart_max = plan[i + 1]
            top = int(torch.argmin((sigmas - restart_max).abs()))
            if top < i + 1:
                sub = get_sigmas_karras(n, float(sigmas[i + 1]), float(sigmas[top])).to(sigmas)[:-1]
                steps += list(zip(sub[:-1], sub[1:])) * times
    return steps


@torch.no_grad()
def sample_restart(model, x, sigmas, callback=None, noise_sampler=None, s_noise=1.0):
    """Restart sampler; with fewer than 20 steps it is plain Heun on `sigmas`."""
    sigmas, plan = _restart_plan(sigmas)
    last = None
    for i, (old, new) in enumerate(_step_list(sigmas, plan)):
        if last is not None and last < old:  # a restart: noise back up to `old`
            x = x + noise_sampler(last, old) * s_noise * (old ** 2 - last ** 2) ** 0.5
        denoised = model(x, old * _ones(x))
        d = _d(x, old, denoised)
        _report(callback, x, i, new, old, denoised)
        x = x + d * (new - old) if new == 0 else heun_step(model, x, d, old, new)
        last = new
    return x
