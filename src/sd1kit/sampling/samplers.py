"""Samplers over a denoiser model(x, sigma) -> x0-hat, one short function each with one signature:
sample_<name>(model, x, sigmas, callback=None, noise_sampler=None, **options) -> x.

Written from the papers and checked step for step against k-diffusion's `k_diffusion/sampling.py` (the code
A1111 runs) in the tests. callback gets {"x", "i", "sigma", "sigma_hat", "denoised"} after each model call.
"""

from __future__ import annotations

import math

import torch


def _d(x, sigma, denoised):
    """Karras ODE derivative dx/dsigma."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """(sigma_down, sigma_up) of an ancestral step: go down deterministically, add sigma_up of fresh noise."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def _ones(x):
    return x.new_ones([x.shape[0]])


def _report(callback, x, i, sigma, sigma_hat, denoised):
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _churn(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise):
    gamma = min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


@torch.no_grad()
def sample_euler(model, x, sigmas, callback=None, noise_sampler=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0):
    """Euler steps, Algorithm 2 of Karras et al. (2022)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * _ones(x))
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + _d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


def heun_step(model, x, d, sigma, sigma_next):
    """Heun's (trapezoidal) step from sigma to sigma_next, d being the derivative at sigma."""
    x_2 = x + d * (sigma_next - sigma)
    return x + (d + _d(x_2, sigma_next, model(x_2, sigma_next * _ones(x)))) / 2 * (sigma_next - sigma)


def dpm2_step(model, x, d, sigma, sigma_next):
    """DPM-Solver-2's step: the derivative at the midpoint in log sigma."""
    sigma_mid = sigma.log().lerp(torch.as_tensor(sigma_next).log(), 0.5).exp()
    x_2 = x + d * (sigma_mid - sigma)
    return x + _d(x_2, sigma_mid, model(x_2, sigma_mid * _ones(x))) * (sigma_next - sigma)


def _second_order(step, model, x, sigmas, callback, noise_sampler, s_churn, s_tmin, s_tmax, s_noise):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * _ones(x))
        d = _d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:  # an Euler step into sigma = 0
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            x = step(model, x, d, sigma_hat, sigmas[i + 1])
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, callback=None, noise_sampler=None, s_churn=0.0, s_tmin=0.0,
                s_tmax=float("inf"), s_noise=1.0):
    """Heun steps, Algorithm 2 of Karras et al. (2022)."""
    return _second_order(heun_step, model, x, sigmas, callback, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, callback=None, noise_sampler=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0):
    """DPM-Solver-2 (Lu et al. 2022) in Karras' form: a midpoint in log sigma."""
    return _second_order(dpm2_step, model, x, sigmas, callback, noise_sampler, s_churn, s_tmin, s_tmax, s_noise)


def euler_step(model, x, d, sigma, sigma_next):
    return x + d * (sigma_next - sigma)


def _ancestral(step, model, x, sigmas, callback, noise_sampler, eta, s_noise):
    """Step deterministically down to sigma_down, then add sigma_up of fresh noise (k-diffusion's ancestral form)."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = _d(x, sigmas[i], denoised)
        x = euler_step(model, x, d, sigmas[i], sigma_down) if sigma_down == 0 else step(model, x, d, sigmas[i], sigma_down)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, callback=None, noise_sampler=None, eta=1.0, s_noise=1.0):
    """Euler steps with ancestral noise ("Euler a")."""
    return _ancestral(euler_step, model, x, sigmas, callback, noise_sampler, eta, s_noise)


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, callback=None, noise_sampler=None, eta=1.0, s_noise=1.0):
    """DPM-Solver-2 steps with ancestral noise ("DPM2 a")."""
    return _ancestral(dpm2_step, model, x, sigmas, callback, noise_sampler, eta, s_noise)


def _lms_coefficient(order: int, t, i: int, j: int) -> float:
    """Integral over [t_i, t_i+1] of the Lagrange basis polynomial of node t_(i-j) (Gauss-Legendre, exact)."""
    nodes = [t[i - k] for k in range(order)]
    xs, ws = _gauss_legendre(order)
    a, b = t[i], t[i + 1]
    total = 0.0
    for xk, wk in zip(xs, ws):
        tau = (b - a) / 2 * xk + (a + b) / 2
        prod = 1.0
        for k in range(order):
            if k != j:
                prod *= (tau - nodes[k]) / (nodes[j] - nodes[k])
        total += wk * prod
    return total * (b - a) / 2


def _gauss_legendre(n: int):
    import numpy as np

    return np.polynomial.legendre.leggauss(n)


@torch.no_grad()
def sample_lms(model, x, sigmas, callback=None, noise_sampler=None, order=4):
    """Linear multistep (Adams-Bashforth in sigma) of up to `order` past derivatives."""
    t = sigmas.detach().cpu().double().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        ds = (ds + [_d(x, sigmas[i], denoised)])[-order:]
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(cur, t, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


def _t(sigma):
    return sigma.log().neg()


def _sigma(t):
    return t.neg().exp()


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model, x, sigmas, callback=None, noise_sampler=None, eta=1.0, s_noise=1.0):
    """DPM-Solver++(2S) (Lu et al. 2022b) single-step, with ancestral noise."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = x + _d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(torch.as_tensor(sigma_down))
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, _sigma(s) * _ones(x))
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, callback=None, noise_sampler=None, eta=1.0, s_noise=1.0, r=0.5):
    """DPM-Solver++ stochastic, two stages per step (the "DPM++ SDE" of k-diffusion)."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + _d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = ancestral_step(_sigma(t), _sigma(s), eta)
        s_ = _t(sd)
        x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise_sampler(_sigma(t), _sigma(s)) * s_noise * su
        denoised_2 = model(x_2, _sigma(s) * _ones(x))
        sd, su = ancestral_step(_sigma(t), _sigma(t_next), eta)
        t_next_ = _t(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise_sampler(_sigma(t), _sigma(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, callback=None, noise_sampler=None):
    """DPM-Solver++(2M) multistep (Lu et al. 2022b)."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            d = denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
        x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * d
        old = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, callback=None, noise_sampler=None, eta=1.0, s_noise=1.0,
                        solver_type="midpoint"):
    """DPM-Solver++(2M) SDE; solver_type "midpoint" or "heun" ("DPM++ 2M SDE Heun")."""
    if solver_type not in ("midpoint", "heun"):
        raise ValueError("solver_type must be 'midpoint' or 'heun'")
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            eta_h = eta * h
            decay = (-h - eta_h).expm1().neg()
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + decay * denoised
            if old is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + (decay / (-h - eta_h) + 1) * (1 / r) * (denoised - old)
                else:
                    x = x + 0.5 * decay * (1 / r) * (denoised - old)
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
            h_last = h
        old = denoised
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(model, x, sigmas, callback=None, noise_sampler=None, eta=1.0, s_noise=1.0):
    """DPM-Solver++(3M) SDE."""
    d1, d2, h1, h2 = None, None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h2 is not None:
                r0, r1 = h1 / h, h2 / h
                d1_0, d1_1 = (denoised - d1) / r0, (d1 - d2) / r1
                x = x + phi_2 * (d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)) - (phi_2 / h_eta - 0.5) * (d1_0 - d1_1) / (r0 + r1)
            elif h1 is not None:
                x = x + phi_2 * (denoised - d1) / (h1 / h)
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
            h1, h2 = h, h1
        d1, d2 = denoised, d1
    return x


@torch.no_grad()
def sample_lcm(model, x, sigmas, callback=None, noise_sampler=None):
    """Latent Consistency Model sampling (Luo et al. 2023): jump to x0-hat, re-noise to the next sigma."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * _ones(x))
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x
