"""A1111's timestep samplers (`modules/sd_samplers_timesteps_impl.py`): DDIM (Song et al. 2020) and PLMS
(Liu et al. 2022) on the discrete timesteps 1, 1+c, 1+2c, ... (c = 1000 // steps), with the uniform sampler
signature. They work on epsilon in the variance-preserving form; the schedule's sigmas name the timesteps.

As in A1111 (1.6 and later), they step from each timestep to the one below it and never evaluate the lowest:
N timesteps take N - 1 model calls and end on the VP latent at the lowest timestep (1), which is decoded as is.
"""

from __future__ import annotations

import torch

from sd1kit.sampling.samplers import _report
from sd1kit.sampling.schedules import DiscreteSchedule


def a1111_timesteps(steps: int) -> torch.Tensor:
    return torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)


def timestep_sigmas(steps: int, schedule: DiscreteSchedule, t_enc: int | None = None) -> torch.Tensor:
    """The sigmas of A1111's DDIM/PLMS timesteps, largest first, then 0 (for the uniform signature).

    img2img (`t_enc` steps of denoising) keeps the lowest t_enc timesteps, as A1111's `sample_img2img` does.
    """
    ts = a1111_timesteps(steps)
    if t_enc is not None:
        ts = ts[:t_enc]
    return torch.cat([schedule.sigmas[ts.flip(0)], schedule.sigmas.new_zeros([1])])


def img2img_noise_level(steps: int, t_enc: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """alphas_cumprod at the timestep A1111 noises the init latent to for the timestep samplers: the one just
    above the highest timestep they then sample from (so the first step sees a slightly noisier latent)."""
    t = a1111_timesteps(steps)[t_enc]
    return 1 / (1 + schedule.sigmas[t].double() ** 2)


class _VP:
    """Epsilon of a VE denoiser model(x, sigma) -> x0-hat, for VP latents at discrete timesteps."""

    def __init__(self, model, schedule: DiscreteSchedule, sigmas: torch.Tensor):
        self.model = model
        self.ac = (1 / (1 + schedule.sigmas.double() ** 2))
        positive = sigmas[sigmas > 0]
        self.t = schedule.sigma_to_t(positive.float(), quantize=True).flip(0)  # ascending timesteps
        self.sigma_of_t = schedule.sigmas

    def eps(self, x_vp, t: int):
        sigma = self.sigma_of_t[t].to(x_vp.dtype)
        x_ve = x_vp / self.ac[t].sqrt().to(x_vp.dtype)
        denoised = self.model(x_ve, sigma * x_vp.new_ones([x_vp.shape[0]]))
        return (x_ve - denoised) / sigma


def _alphas(vp: _VP):
    a = vp.ac[vp.t]
    a_prev = vp.ac[torch.nn.functional.pad(vp.t[:-1], (1, 0))]  # the first timestep's "previous" is t = 0
    return a, a_prev


def _to_vp(x, vp: _VP):
    return x * vp.ac[vp.t[-1]].sqrt().to(x.dtype)  # the VE latent at the first timestep, as VP


@torch.no_grad()
def sample_ddim(model, x, sigmas, callback=None, noise_sampler=None, eta=0.0, schedule: DiscreteSchedule = None):
    """DDIM; eta > 0 adds noise (A1111's "Eta" for DDIM, default 0)."""
    vp = _VP(model, schedule, sigmas)
    a, a_prev = _alphas(vp)
    sig = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
    x = _to_vp(x, vp)
    for i in range(len(vp.t) - 1):
        k = len(vp.t) - 1 - i
        e_t = vp.eps(x, int(vp.t[k]))
        pred_x0 = (x - (1 - a[k]).sqrt() * e_t) / a[k].sqrt()
        x = a_prev[k].sqrt() * pred_x0 + (1 - a_prev[k] - sig[k] ** 2).sqrt() * e_t
        if sig[k] > 0:
            x = x + sig[k] * noise_sampler(sigmas[i], sigmas[i + 1])
        _report(callback, x, i, sigmas[i], sigmas[i], pred_x0)
    return x


@torch.no_grad()
def sample_plms(model, x, sigmas, callback=None, noise_sampler=None, schedule: DiscreteSchedule = None):
    """PLMS: a pseudo improved-Euler first step, then Adams-Bashforth of orders 2 to 4 on epsilon."""
    vp = _VP(model, schedule, sigmas)
    a, a_prev = _alphas(vp)
    x = _to_vp(x, vp)
    old: list = []

    def step(x_cur, e, k):
        pred_x0 = (x_cur - (1 - a[k]).sqrt() * e) / a[k].sqrt()
        return a_prev[k].sqrt() * pred_x0 + (1 - a_prev[k]).sqrt() * e, pred_x0

    for i in range(len(vp.t) - 1):
        k = len(vp.t) - 1 - i
        e_t = vp.eps(x, int(vp.t[k]))
        if not old:
            x_next, _ = step(x, e_t, k)
            e_prime = (e_t + vp.eps(x_next, int(vp.t[max(k - 1, 0)]))) / 2
        elif len(old) == 1:
            e_prime = (3 * e_t - old[-1]) / 2
        elif len(old) == 2:
            e_prime = (23 * e_t - 16 * old[-1] + 5 * old[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old[-1] + 37 * old[-2] - 9 * old[-3]) / 24
        x, pred_x0 = step(x, e_prime, k)
        old = (old + [e_t])[-3:]
        _report(callback, x, i, sigmas[i], sigmas[i], pred_x0)
    return x
