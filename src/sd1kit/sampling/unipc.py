"""UniPC (Zhao et al. 2023, arXiv 2302.04867): multistep predictor UniP with corrector UniC on x0-predictions,
configured as A1111 runs it by default (variant bh1, order 3, lower order at the end, "time uniform" steps in the
continuous VP time of DPM-Solver's discrete schedule, ending on timestep 0).

Works on any sigma grid through model(x, sigma) -> x0-hat; `unipc_sigmas` gives A1111's grid.
"""

from __future__ import annotations

import math

import torch

from sd1kit.sampling.samplers import _report
from sd1kit.sampling.schedules import DiscreteSchedule
from sd1kit.sampling.timesteps import a1111_timesteps


def unipc_sigmas(steps: int, schedule: DiscreteSchedule, t_enc: int | None = None) -> torch.Tensor:
    """Sigmas at t = linspace(t_start, 1/N, n + 1) with log(alpha) interpolated linearly in t (DPM-Solver's
    NoiseScheduleVP('discrete')), ending on timestep 0. As in A1111, n is the number of its DDIM timesteps for
    `steps` (one more when `steps` does not divide 1000) and t_start = 1; for img2img, n = t_enc and t_start is
    the highest of the t_enc lowest timesteps."""
    ts = a1111_timesteps(steps)
    n_train = len(schedule.sigmas)
    if t_enc is None:
        n, t_start = len(ts), 1.0
    else:
        n, t_start = t_enc, (float(ts[t_enc - 1]) + 1) / n_train
    ac = 1 / (1 + schedule.sigmas.double() ** 2)
    log_alpha = 0.5 * ac.log()
    t = torch.linspace(t_start, 1.0 / n_train, n + 1, dtype=torch.float64)
    pos = t * n_train - 1  # t = (i + 1) / N
    lo = pos.floor().long().clamp(0, n_train - 2)
    w = pos - lo
    la = (1 - w) * log_alpha[lo] + w * log_alpha[lo + 1]
    return ((1 - (2 * la).exp()).sqrt() / la.exp()).float()


def _coefficients(h, rks, order: int, variant: str):
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else torch.expm1(hh)
    rows, b, factorial = [], [], 1
    for i in range(1, order + 1):
        rows.append(rks ** (i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return torch.stack(rows), torch.stack(b), h_phi_1, b_h


def _update(model, x, prev_m, prev_lam, lam_t, sigma_vp, alpha, order, variant, use_corrector, sigma_ve):
    """One UniPC step to lambda_t from the last point; x is VP. Returns (x, x0-hat at the new point or None)."""
    h = lam_t - prev_lam[-1]
    rks, d1s = [], []
    for i in range(1, order):
        rk = (prev_lam[-(i + 1)] - prev_lam[-1]) / h
        rks.append(rk)
        d1s.append((prev_m[-(i + 1)] - prev_m[-1]) / rk)
    rks = torch.stack(rks + [torch.ones_like(h)])
    R, b, h_phi_1, b_h = _coefficients(h, rks, order, variant)
    x_base = sigma_vp[1] / sigma_vp[0] * x - alpha * h_phi_1 * prev_m[-1]
    if d1s:
        rhos_p = torch.tensor([0.5], dtype=x.dtype) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        pred = sum(r * d for r, d in zip(rhos_p, d1s))
    else:
        pred = 0
    x_t = x_base - alpha * b_h * pred
    if not use_corrector:
        return x_t, None
    rhos_c = torch.tensor([0.5], dtype=x.dtype) if order == 1 else torch.linalg.solve(R, b)
    m_t = model(x_t / alpha, sigma_ve * x.new_ones([x.shape[0]]))
    corr = sum(r * d for r, d in zip(rhos_c[:-1], d1s)) if d1s else 0
    return x_base - alpha * b_h * (corr + rhos_c[-1] * (m_t - prev_m[-1])), m_t


@torch.no_grad()
def sample_unipc(model, x, sigmas, callback=None, noise_sampler=None, order=3, variant="bh1",
                 lower_order_final=True):
    """UniPC multistep on the grid `sigmas` (no trailing 0); returns the VP latent at the last sigma."""
    sigmas = sigmas[sigmas > 0].to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    steps = len(sigmas) - 1
    order = min(order, steps)
    alpha = 1 / (1 + sigmas ** 2).sqrt()
    sigma_vp = sigmas * alpha
    lam = -sigmas.log()
    x = x * alpha[0]  # VE -> VP at the first time
    ones = x.new_ones([x.shape[0]])
    prev_m, prev_lam = [model(x / alpha[0], sigmas[0] * ones)], [lam[0]]
    for step in range(1, steps + 1):
        step_order = min(step, order) if step < order else (min(order, steps + 1 - step) if lower_order_final else order)
        use_corrector = step < steps
        x, m = _update(model, x, prev_m, prev_lam, lam[step], (sigma_vp[step - 1], sigma_vp[step]), alpha[step],
                       step_order, variant, use_corrector, sigmas[step])
        if m is None and step < steps:
            m = model(x / alpha[step], sigmas[step] * ones)
        _report(callback, x, step - 1, sigmas[step - 1], sigmas[step - 1], m if m is not None else prev_m[-1])
        prev_m, prev_lam = (prev_m + [m])[-order:], (prev_lam + [lam[step]])[-order:]
    return x
