"""A1111's timestep samplers (`modules/sd_samplers_timesteps_impl.py`): DDIM (Song et al. 2020), DDIM CFG++
(Chung et al. 2024) and PLMS (Liu et al. 2022) on the discrete timesteps 1, 1+c, 1+2c, ... (c = 1000 // steps),
with the uniform sampler signature. They work on epsilon in the variance-preserving form, with the model's
alphas_cumprod; the schedule's sigmas name the timesteps.

As in A1111 (1.6 and later), they step from each timestep to the one below it and never evaluate the lowest:
N timesteps take N - 1 model calls and end on the VP latent at the lowest timestep (1), which is decoded as is.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from sd1kit.sampling.samplers import _report
from sd1kit.sampling.schedules import DiscreteSchedule


def a1111_timesteps(steps: int) -> torch.Tensor:
    return torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)


def _sigmas_of_timesteps(schedule: DiscreteSchedule) -> torch.Tensor:
    """Per integer timestep, the sigma the schedule's sigma_to_t maps back to that timestep: its own sigmas, or,
    for a float16 table (downcast alphas_cumprod, whose log sigmas are float16 logs of float16 sigmas), the
    exponentials of its log sigmas, so that the model is evaluated at the integer timestep as A1111's are."""
    if torch.equal(schedule.sigmas.log(), schedule.log_sigmas):
        return schedule.sigmas
    return schedule.t_to_sigma(torch.arange(len(schedule.sigmas), dtype=torch.float32))


def timestep_sigmas(steps: int, schedule: DiscreteSchedule, t_enc: int | None = None) -> torch.Tensor:
    """The sigmas of A1111's DDIM/PLMS timesteps, largest first, then 0 (for the uniform signature).

    img2img (`t_enc` steps of denoising) keeps the lowest t_enc timesteps, as A1111's `sample_img2img` does.
    """
    ts = a1111_timesteps(steps)
    if t_enc is not None:
        ts = ts[:t_enc]
    sigma_of_t = _sigmas_of_timesteps(schedule)
    return torch.cat([sigma_of_t[ts.flip(0)], sigma_of_t.new_zeros([1])])


def _alphas_cumprod(schedule: DiscreteSchedule) -> torch.Tensor:
    ac = getattr(schedule, "alphas_cumprod", None)
    return (1 / (1 + schedule.sigmas.double() ** 2)) if ac is None else ac


def img2img_noise_level(steps: int, t_enc: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """alphas_cumprod at the timestep A1111 noises the init latent to for the timestep samplers: the one just
    above the highest timestep they then sample from (so the first step sees a slightly noisier latent)."""
    t = a1111_timesteps(steps)[t_enc]
    return _alphas_cumprod(schedule)[t].double()


class _VP:
    """Epsilon of a VE denoiser model(x, sigma) -> x0-hat, for VP latents at discrete timesteps.

    The VP <-> VE conversion uses the sigma the model is called at (so the UNet sees the VP latent itself, as in
    A1111); the DDIM/PLMS coefficients use the model's alphas_cumprod (A1111's `alphas_cumprod[timesteps]`,
    with sqrt(1 - alpha) computed in their dtype)."""

    def __init__(self, model, schedule: DiscreteSchedule, sigmas: torch.Tensor):
        self.model = model
        table = _alphas_cumprod(schedule)
        self.ac = table.double()
        self.sqrt_one_minus = (1 - table).sqrt().double()
        self.sigma_of_t = _sigmas_of_timesteps(schedule)
        self.scale = (1 + self.sigma_of_t.double() ** 2).sqrt()  # VE latent = VP latent * scale
        positive = sigmas[sigmas > 0]
        self.t = schedule.sigma_to_t(positive.float(), quantize=True).flip(0)  # ascending timesteps

    def eps(self, x_vp, t: int):
        return self.eps_of(x_vp, t, self.denoise(x_vp, t))

    def denoise(self, x_vp, t: int):
        sigma = self.sigma_of_t[t].to(x_vp.dtype)
        return self.model(x_vp * self.scale[t].to(x_vp.dtype), sigma * x_vp.new_ones([x_vp.shape[0]]))

    def eps_of(self, x_vp, t: int, denoised):
        """The epsilon that an x0-hat of the model at timestep t implies for the VP latent x_vp."""
        return (x_vp * self.scale[t].to(x_vp.dtype) - denoised) / self.sigma_of_t[t].to(x_vp.dtype)


def _alphas(vp: _VP):
    prev = torch.nn.functional.pad(vp.t[:-1], (1, 0))  # the first timestep's "previous" is t = 0
    return vp.ac[vp.t], vp.ac[prev], vp.sqrt_one_minus[vp.t]


def _to_vp(x, vp: _VP):
    return x / vp.scale[vp.t[-1]].to(x.dtype)  # the VE latent at the first timestep, as VP


@torch.no_grad()
def sample_ddim(model, x, sigmas, callback=None, noise_sampler=None, eta=0.0, schedule: DiscreteSchedule = None):
    """DDIM; eta > 0 adds noise (A1111's "Eta" for DDIM, default 0)."""
    vp = _VP(model, schedule, sigmas)
    a, a_prev, sqrt_one_minus_a = _alphas(vp)
    sig = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
    x = _to_vp(x, vp)
    for i in range(len(vp.t) - 1):
        k = len(vp.t) - 1 - i
        e_t = vp.eps(x, int(vp.t[k]))
        pred_x0 = (x - sqrt_one_minus_a[k] * e_t) / a[k].sqrt()
        x = a_prev[k].sqrt() * pred_x0 + (1 - a_prev[k] - sig[k] ** 2).sqrt() * e_t
        if sig[k] > 0:
            x = x + sig[k] * noise_sampler(sigmas[i], sigmas[i + 1])
        _report(callback, x, i, sigmas[i], sigmas[i], pred_x0)
    return x


CFGPP_SCALE = 1 / 12.5  # A1111's ddim_cfgpp: CFG scales 0..12.5 become CFG++'s guidance 0..1


@contextmanager
def _guidance_scaled(model, factor: float):
    """The model's CFG scale times `factor` while sampling (A1111 sets `cond_scale_miltiplier` on its CFG
    denoiser). Yields False when the model has no `cfg_scale` to scale: the sampler scales its guidance itself."""
    if not hasattr(model, "cfg_scale"):
        yield False
        return
    before = model.cfg_scale
    model.cfg_scale = before * factor
    try:
        yield True
    finally:
        model.cfg_scale = before


@torch.no_grad()
def sample_ddim_cfgpp(model, x, sigmas, callback=None, noise_sampler=None, eta=0.0,
                      schedule: DiscreteSchedule = None):
    """A1111's "DDIM CFG++" (`ddim_cfgpp`; Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free
    Guidance"): DDIM whose x0-hat is guided at the CFG scale / 12.5, and which renoises along the negative
    prompt's epsilon instead of the guided one.

    `model` is a CFG denoiser exposing `last_uncond_denoised` (the negative prompt's x0-hat of its latest call,
    shaped like x) and `cfg_scale` (scaled for the run and restored after). A model without `cfg_scale` is taken
    to guide linearly (uncond + s * (cond - uncond)), and its guidance is scaled here from its two outputs.
    """
    vp = _VP(model, schedule, sigmas)
    a, a_prev, sqrt_one_minus_a = _alphas(vp)
    sig = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
    x = _to_vp(x, vp)
    with _guidance_scaled(model, CFGPP_SCALE) as scaled_by_model:
        for i in range(len(vp.t) - 1):
            k = len(vp.t) - 1 - i
            t = int(vp.t[k])
            guided = vp.denoise(x, t)
            uncond = getattr(model, "last_uncond_denoised", None)
            if uncond is None:
                raise ValueError("DDIM CFG++ needs a CFG denoiser that exposes last_uncond_denoised")
            if not scaled_by_model:
                guided = uncond + (guided - uncond) * CFGPP_SCALE
            e_t, e_uncond = vp.eps_of(x, t, guided), vp.eps_of(x, t, uncond)
            pred_x0 = (x - sqrt_one_minus_a[k] * e_t) / a[k].sqrt()
            x = a_prev[k].sqrt() * pred_x0 + (1 - a_prev[k] - sig[k] ** 2).sqrt() * e_uncond
            if sig[k] > 0:
                x = x + sig[k] * noise_sampler(sigmas[i], sigmas[i + 1])
            _report(callback, x, i, sigmas[i], sigmas[i], pred_x0)
    return x


@torch.no_grad()
def sample_plms(model, x, sigmas, callback=None, noise_sampler=None, schedule: DiscreteSchedule = None):
    """PLMS: a pseudo improved-Euler first step, then Adams-Bashforth of orders 2 to 4 on epsilon."""
    vp = _VP(model, schedule, sigmas)
    a, a_prev, sqrt_one_minus_a = _alphas(vp)
    x = _to_vp(x, vp)
    old: list = []

    def step(x_cur, e, k):
        pred_x0 = (x_cur - sqrt_one_minus_a[k] * e) / a[k].sqrt()
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
