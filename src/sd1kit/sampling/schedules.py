"""SD1's discrete noise schedule and the sigma schedules A1111 offers (`modules/sd_schedulers.py`), as
`get_sigmas_<name>` functions. Sigmas are float32 like A1111's, whose model keeps alphas_cumprod in float32."""

from __future__ import annotations

import math

import numpy as np
import torch

from sd1kit.models.schedule import sd1_betas

ZTSNR_LAST_ALPHA_BAR = 4.8973451890853435e-08  # A1111's choice for the last step (sigma_max ~ 4518.76)
AYS_SD1_SIGMAS = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)


def sd1_alphas_cumprod(zero_terminal_snr: bool = False, downcast: bool = False) -> torch.Tensor:
    """alphas_cumprod as A1111 holds it for sampling: computed in float64 and kept in float32, as LDM registers it.

    downcast: A1111's "Downcast alphas_cumprod" (`use_downcasted_alpha_bar`; on for pictures of A1111 before
    1.7.0-225, which held the whole model, this buffer included, in float16): the float16 tensor itself, since
    everything A1111 derives from it is then computed in float16 (`DiscreteSchedule` does the same). A1111
    (`modules/sd_models.py apply_alpha_schedule_override`) downcasts first and rescales for zero terminal SNR
    after, in float16; the last value then rounds to 2**-24 and A1111's sigma_max overflows to inf, so that pair
    is refused here.
    """
    ac = torch.cumprod(1.0 - sd1_betas(), dim=0).float()
    if downcast:
        if zero_terminal_snr:
            raise ValueError("zero terminal SNR with downcast alphas_cumprod gives A1111 an infinite sigma_max")
        return ac.half()
    return rescale_zero_terminal_snr(ac) if zero_terminal_snr else ac


def rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023 (arXiv 2305.08891), Algorithm 1 on sqrt(alpha_bar); the last value set as A1111 does."""
    s = alphas_cumprod.sqrt()
    first, last = s[0].clone(), s[-1].clone()
    s = (s - last) * (first / (first - last))
    out = s ** 2
    out[-1] = ZTSNR_LAST_ALPHA_BAR
    return out


class DiscreteSchedule:
    """The 1000 discrete sigmas of a model and the maps t <-> sigma (interpolating in log sigma)."""

    def __init__(self, alphas_cumprod: torch.Tensor, quantize: bool = False):
        # computed in the dtype given, as k-diffusion's DiscreteEpsDDPMDenoiser does: float16 alphas_cumprod
        # (A1111's "Downcast alphas_cumprod") give float16 sigmas and log sigmas, kept here as float32 (the same
        # values; k-diffusion's maps promote them to float32 as they use them)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        log_sigmas = sigmas.log()
        if sigmas.dtype == torch.float16:
            sigmas, log_sigmas = sigmas.float(), log_sigmas.float()
        self.alphas_cumprod = alphas_cumprod.float() if alphas_cumprod.dtype == torch.float16 else alphas_cumprod
        self.sigmas = sigmas
        self.log_sigmas = log_sigmas
        self.quantize = quantize

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        quantize = self.quantize if quantize is None else quantize
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas.to(log_sigma.device)[:, None]
        if quantize:
            return dists.abs().argmin(dim=0).view(sigma.shape)
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        log_sigmas = self.log_sigmas.to(log_sigma.device)
        lo, hi = log_sigmas[low], log_sigmas[low + 1]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * (low + 1)).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigmas = self.log_sigmas.to(t.device)
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()

    def get_sigmas(self, n: int) -> torch.Tensor:
        """Uniform in t (k-diffusion DiscreteSchedule.get_sigmas; A1111 "Uniform")."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return _append_zero(self.t_to_sigma(t))


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), eq. 5."""
    ramp = torch.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def get_sigmas_polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def get_sigmas_uniform(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    return schedule.get_sigmas(n)


def _t_range(schedule: DiscreteSchedule, sigma_min: float, sigma_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    return schedule.sigma_to_t(torch.tensor(sigma_max)), schedule.sigma_to_t(torch.tensor(sigma_min))


def get_sigmas_sgm_uniform(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    start, end = _t_range(schedule, sigma_min, sigma_max)
    sigmas = [float(schedule.t_to_sigma(t)) for t in torch.linspace(start, end, n + 1)[:-1]]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def get_sigmas_normal(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    start, end = _t_range(schedule, sigma_min, sigma_max)
    sigmas = [float(schedule.t_to_sigma(t)) for t in torch.linspace(start, end, n)]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def get_sigmas_simple(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    stride = len(schedule.sigmas) / n
    sigmas = [float(schedule.sigmas[-(1 + int(i * stride))]) for i in range(n)]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def get_sigmas_ddim(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    stride = max(len(schedule.sigmas) // n, 1)
    sigmas = [float(schedule.sigmas[i]) for i in range(1, len(schedule.sigmas), stride)][::-1]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def get_sigmas_kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Sabour et al. (2024): uniform in arctan(sigma)."""
    a_min, a_max = torch.arctan(torch.tensor(sigma_min)), torch.arctan(torch.tensor(sigma_max))
    i = torch.arange(n + 1)
    return torch.tan(i / n * a_min + (1.0 - i / n) * a_max)


def get_sigmas_align_your_steps(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """NVIDIA's Align Your Steps sigmas for SD1.5, log-linearly interpolated to n steps (as A1111)."""
    if n == len(AYS_SD1_SIGMAS):
        return torch.tensor([*AYS_SD1_SIGMAS, 0.0], dtype=torch.float32)
    ys = np.log(np.array(AYS_SD1_SIGMAS)[::-1])
    interp = np.exp(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(AYS_SD1_SIGMAS)), ys))[::-1]
    return torch.tensor(np.append(interp, 0.0), dtype=torch.float32)


def get_sigmas_beta(n: int, sigma_min: float, sigma_max: float, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Lee et al. (2024), arXiv 2407.12173: timesteps at Beta(alpha, beta) quantiles (A1111's defaults 0.6/0.6)."""
    from scipy import stats

    ts = [stats.beta.ppf(x, alpha, beta) for x in 1 - np.linspace(0, 1, n)]
    return torch.tensor([sigma_min + t * (sigma_max - sigma_min) for t in ts] + [0.0], dtype=torch.float32)


def discard_penultimate(sigmas: torch.Tensor) -> torch.Tensor:
    """A1111's "Discard penultimate sigma" (DPM2, DPM2 a, DPM++ 3M SDE): drop the step before 0."""
    return torch.cat([sigmas[:-2], sigmas[-1:]])
