"""DPM-Solver (Lu et al. 2022, arXiv 2206.00927) in its fixed-step "fast" and adaptive forms, as A1111's
"DPM fast" / "DPM adaptive" run them (k-diffusion's DPMSolver). Works in t = -log(sigma) on epsilon."""

from __future__ import annotations

import math

import torch

from sd1kit.sampling.samplers import _report, ancestral_step


def _sigma(t):
    return t.neg().exp()


def _t(sigma):
    return -torch.as_tensor(sigma).log()


class _Solver:
    def __init__(self, model, x):
        self.model = model

    def eps(self, cache: dict, key: str, x, t):
        if key not in cache:
            cache[key] = (x - self.model(x, _sigma(t) * x.new_ones([x.shape[0]]))) / _sigma(t)
        return cache[key]

    def step1(self, x, t, t_next, cache):
        return x - _sigma(t_next) * (t_next - t).expm1() * self.eps(cache, "eps", x, t)

    def step2(self, x, t, t_next, cache, r1=0.5):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = x - _sigma(s2) * (r2 * h).expm1() * eps - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def noise_step(self, s, t, t_end, eta):
        """Target t and sigma_up of an (optionally ancestral) step from s to t."""
        if not eta:
            return t, 0.0
        sd, _ = ancestral_step(_sigma(s), _sigma(t), eta)
        t_ = torch.minimum(t_end, _t(sd))
        return t_, (_sigma(t) ** 2 - _sigma(t_) ** 2) ** 0.5


def _range(sigmas):
    positive = sigmas[sigmas > 0]
    return _t(sigmas.max()), _t(positive.min())


@torch.no_grad()
def sample_dpm_fast(model, x, sigmas, callback=None, noise_sampler=None, eta=0.0, s_noise=1.0):
    """DPM-Solver-fast: len(sigmas) - 1 model evaluations as 3rd-order steps, uniform in t between the
    schedule's largest and smallest positive sigma."""
    nfe = len(sigmas) - 1
    t_start, t_end = _range(sigmas)
    solver = _Solver(model, x)
    m = math.floor(nfe / 3) + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, dtype=sigmas.dtype)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        t_next_, su = solver.noise_step(t, t_next, t_end, eta)
        eps = solver.eps(cache, "eps", x, t)
        _report(callback, x, i, _sigma(t), _sigma(t), x - _sigma(t) * eps)
        x = (solver.step1, solver.step2, solver.step3)[order - 1](x, t, t_next_, cache)
        if su:
            x = x + su * s_noise * noise_sampler(_sigma(t), _sigma(t_next))
    return x


class _PID:
    """PID step-size controller (Söderlind 2003) as k-diffusion's PIDStepSizeController."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety, eps=1e-8):
        self.h = h
        self.b = ((pcoeff + icoeff + dcoeff) / order, -(pcoeff + 2 * dcoeff) / order, dcoeff / order)
        self.accept_safety, self.eps, self.errs = accept_safety, eps, []

    def propose(self, error) -> bool:
        inv = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv, inv, inv]
        self.errs[0] = inv
        factor = self.errs[0] ** self.b[0] * self.errs[1] ** self.b[1] * self.errs[2] ** self.b[2]
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


@torch.no_grad()
def sample_dpm_adaptive(model, x, sigmas, callback=None, noise_sampler=None, order=3, rtol=0.05, atol=0.0078,
                        h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81, eta=0.0, s_noise=1.0):
    """DPM-Solver-12/23 with adaptive steps between the schedule's largest and smallest positive sigma."""
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    t_start, t_end = _range(sigmas)
    solver = _Solver(model, x)
    atol, rtol = torch.tensor(atol), torch.tensor(rtol)
    s, x_prev, steps = t_start, x, 0
    pid = _PID(abs(h_init), pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    while s < t_end - 1e-5:
        cache: dict = {}
        t = torch.minimum(t_end, s + pid.h)
        t_, su = solver.noise_step(s, t, t_end, eta)
        denoised = x - _sigma(s) * solver.eps(cache, "eps", x, s)
        if order == 2:
            low, high = solver.step1(x, s, t_, cache), solver.step2(x, s, t_, cache)
        else:
            low, high = solver.step2(x, s, t_, cache, r1=1 / 3), solver.step3(x, s, t_, cache)
        delta = torch.maximum(atol, rtol * torch.maximum(low.abs(), x_prev.abs()))
        error = torch.linalg.norm((low - high) / delta) / x.numel() ** 0.5
        if pid.propose(error):
            x_prev = low
            x = high + su * s_noise * noise_sampler(_sigma(s), _sigma(t)) if su else high
            s = t
        _report(callback, x, steps, _sigma(s), _sigma(s), denoised)
        steps += 1
    return x
