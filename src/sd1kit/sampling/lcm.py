"""A1111's "LCM" sampler setup (`modules/sd_samplers_lcm.py`): the model seen through LCM's 50 original
timesteps (every 20th of the 1000, ending at 19), with the consistency models' boundary scalings
(sigma_data 0.5, timestep x 10) applied to the epsilon denoiser's x0-hat (Luo et al. 2023)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sd1kit.sampling.denoisers import RawModel, _bc, uncond_arg
from sd1kit.sampling.schedules import DiscreteSchedule

ORIGINAL_STEPS = 50
SKIP = 1000 // ORIGINAL_STEPS


class LCMSchedule(DiscreteSchedule):
    """The 50 LCM noise levels; t here is the real timestep 19, 39, ..., 999."""

    def __init__(self, full: DiscreteSchedule):
        ac = getattr(full, "alphas_cumprod", None)
        if ac is None:
            ac = 1 / (1 + full.sigmas ** 2)
        # A1111 copies every 20th of the model's alphas_cumprod into a float32 buffer (float16 ones included)
        super().__init__(ac[SKIP - 1::SKIP].float().clone(), quantize=True)

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        idx = (sigma.log() - self.log_sigmas.to(sigma.device)[:, None]).abs().argmin(dim=0).view(sigma.shape)
        return idx * SKIP + (SKIP - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return super().t_to_sigma(torch.clamp((t - (SKIP - 1)) / SKIP, min=0, max=len(self.sigmas) - 1))

    def get_sigmas(self, n: int) -> torch.Tensor:
        start, end = self.sigma_to_t(self.sigmas[-1]), self.sigma_to_t(self.sigmas[0])
        t = torch.linspace(float(start), float(end), n)
        return torch.cat([self.t_to_sigma(t), t.new_zeros([1])])


def lcm_sigmas(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """LCM's "Automatic" (= "Uniform") sigmas: evenly spaced over its 50 timesteps. Other schedule types come from
    `registry.get_sigmas`, which spans them over LCM's sigmas as A1111 does."""
    return LCMSchedule(schedule).get_sigmas(steps)


@dataclass
class LCMDenoiser:
    """x0-hat of an epsilon model through LCM's timesteps and boundary condition (A1111's LCMCompVisDenoiser)."""

    model: RawModel
    schedule: DiscreteSchedule  # the model's full 1000-step schedule

    def __post_init__(self):
        self.lcm = LCMSchedule(self.schedule)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, context=None, image_cond=None, uncond=None) -> torch.Tensor:
        s = _bc(sigma, x)
        t = self.lcm.sigma_to_t(sigma)
        eps = self.model(x / (s ** 2 + 1) ** 0.5, t, context, image_cond, **uncond_arg(self.model, uncond))
        x0 = x - s * eps
        scaled = _bc(t, x).to(x.dtype) * 10.0
        c_skip = 0.25 / (scaled ** 2 + 0.25)
        c_out = scaled / (scaled ** 2 + 0.25) ** 0.5
        return c_out * x0 + c_skip * x
