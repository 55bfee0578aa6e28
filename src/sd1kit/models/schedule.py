"""SD1's discrete "scaled linear" noise schedule (formats.md §4), as stored in LDM checkpoints."""

from __future__ import annotations

import torch

LINEAR_START, LINEAR_END, TIMESTEPS = 0.00085, 0.0120, 1000


def sd1_betas(dtype=torch.float64) -> torch.Tensor:
    return torch.linspace(LINEAR_START ** 0.5, LINEAR_END ** 0.5, TIMESTEPS, dtype=torch.float64).pow(2).to(dtype)


def ldm_schedule_buffers() -> dict[str, torch.Tensor]:
    """The 12 schedule buffers an LDM `LatentDiffusion` checkpoint carries (fp32, as the originals)."""
    betas = sd1_betas()
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, 0)
    ac_prev = torch.cat([torch.ones(1, dtype=ac.dtype), ac[:-1]])
    posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
    buffers = {
        "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": ac.sqrt(), "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - ac).log(), "sqrt_recip_alphas_cumprod": (1 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(), "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1 - ac),
        "posterior_mean_coef2": (1 - ac_prev) * alphas.sqrt() / (1 - ac),
    }
    return {k: v.float() for k, v in buffers.items()}
