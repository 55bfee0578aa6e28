"""Denoisers: a model's raw output (epsilon or v) at a continuous sigma turned into x0-hat (k-diffusion's
`CompVisDenoiser` / `CompVisVDenoiser`, sigma_data = 1), and classifier-free guidance around it as A1111's
`CFGDenoiser` does it (cond and uncond batched, AND weights, skipping uncond at low sigma, masks), plus CFG
rescale (Lin et al. 2023)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from sd1kit.sampling.schedules import DiscreteSchedule

# model(x_in, t, context, image_cond[, uncond]) -> epsilon or v, the UNet's raw output (uncond, for models with
# `accepts_uncond`: which rows are the negative prompt's, e.g. ControlNet's "ControlNet is more important")
RawModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
PREDICTIONS = ("epsilon", "v")


def unet_model(unet) -> RawModel:
    """A diffusers UNet as a raw model. Inpainting UNets (9 input channels) get the mask and the masked image's
    latent concatenated after the scaled latent, as LDM's c_concat does; instruct-pix2pix (8) the image latent."""
    def run(x_in, t, context, image_cond):
        if image_cond is not None:
            x_in = torch.cat([x_in, image_cond.to(x_in.dtype)], dim=1)
        dtype = unet.dtype  # the UNet may run in bf16/fp16 while the sampler keeps fp32 latents
        return unet(x_in.to(dtype), t, encoder_hidden_states=context.to(dtype)).sample.to(x_in.dtype)
    return run


def uncond_arg(model, uncond) -> dict:
    """Only models that declare `accepts_uncond` get told which rows are the negative prompt's."""
    return {"uncond": uncond} if getattr(model, "accepts_uncond", False) else {}


def _bc(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


@dataclass
class Denoiser:
    """x0-hat(x, sigma) of a discrete-time model with epsilon or v parameterisation."""

    model: RawModel
    schedule: DiscreteSchedule
    prediction: str = "epsilon"

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, not {self.prediction!r}")

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, context=None, image_cond=None, uncond=None) -> torch.Tensor:
        s = _bc(sigma, x)
        c_in = 1 / (s ** 2 + 1) ** 0.5
        out = self.model(x * c_in, self.schedule.sigma_to_t(sigma), context, image_cond, **uncond_arg(self.model, uncond))
        if self.prediction == "epsilon":
            return x - s * out
        return x / (s ** 2 + 1) - out * s / (s ** 2 + 1) ** 0.5


def rescale_cfg(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, guided: torch.Tensor,
                phi: float) -> torch.Tensor:
    """CFG rescale in v-space (as ComfyUI's RescaleCFG; the paper's form for v-prediction models):
    v_r = v_g * std(v_c) / std(v_g); result = phi * v_r + (1 - phi) * v_g. Inputs are x0-hats."""
    s = _bc(sigma, x)
    to_v = lambda x0: (x / (s ** 2 + 1) - x0) * (s ** 2 + 1) ** 0.5 / s
    v_c, v_g = to_v(cond), to_v(guided)
    dims = tuple(range(1, x.ndim))
    v_r = v_g * v_c.std(dim=dims, keepdim=True) / v_g.std(dim=dims, keepdim=True)
    v = phi * v_r + (1 - phi) * v_g
    return x / (s ** 2 + 1) - v * s / (s ** 2 + 1) ** 0.5


@dataclass
class CFGDenoiser:
    """Classifier-free guidance over a Denoiser, called by samplers as model(x, sigma).

    conds_at(step) gives, per image, a list of (conditioning [1, tokens, dim], weight) (several with AND);
    uncond_at(step) the negative conditioning [batch, tokens, dim]. `step` counts calls, as A1111's does.
    """

    denoiser: Denoiser
    conds_at: Callable[[int], list[list[tuple[torch.Tensor, float]]]]
    uncond_at: Callable[[int], torch.Tensor]
    cfg_scale: float = 7.0
    cfg_rescale: float = 0.0
    s_min_uncond: float = 0.0  # A1111 "Negative Guidance minimum sigma" (NGMS)
    image_cond: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # 1 = keep init_latent (A1111's p.mask)
    init_latent: torch.Tensor | None = None
    mask_before_denoising: bool = False  # A1111's timestep samplers blend the init latent into x, not into x0
    step: int = 0
    calls: list = field(default_factory=list)  # model batch sizes, for tests and stats

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        conds, uncond = self.conds_at(self.step), self.uncond_at(self.step)
        if self.mask is not None and self.mask_before_denoising:
            # A1111 puts the clean init latent into the VP latent; its VE form is init * sqrt(1 + sigma^2)
            x = x * (1 - self.mask) + self.init_latent * self.mask * (_bc(sigma, x) ** 2 + 1) ** 0.5
        skip_uncond = self.step % 2 == 1 and self.s_min_uncond > 0 and float(sigma[0]) < self.s_min_uncond
        batch = x.shape[0]
        repeats = [len(c) for c in conds]
        x_in = torch.cat([x[i:i + 1].expand(n, *x.shape[1:]) for i, n in enumerate(repeats)] + ([] if skip_uncond else [x]))
        sigma_in = torch.cat([sigma[i:i + 1].expand(n) for i, n in enumerate(repeats)] + ([] if skip_uncond else [sigma]))
        cond_tensors = [c for per_image in conds for c, _ in per_image]
        image_in = None
        if self.image_cond is not None:
            image_in = torch.cat([self.image_cond[i:i + 1].expand(n, *self.image_cond.shape[1:])
                                  for i, n in enumerate(repeats)] + ([] if skip_uncond else [self.image_cond]))
        out = self._run(x_in, sigma_in, cond_tensors, None if skip_uncond else uncond, image_in)
        if skip_uncond:  # the cond result of each image stands in for its uncond (A1111)
            firsts = [sum(repeats[:i]) for i in range(batch)]
            out = torch.cat([out, out[firsts]])
        uncond_out = out[-batch:]
        denoised = uncond_out.clone()
        scale = 1.0 if skip_uncond else self.cfg_scale
        index = 0
        for i, per_image in enumerate(conds):
            for _c, weight in per_image:
                denoised[i] += (out[index] - uncond_out[i]) * (weight * scale)
                index += 1
        if self.cfg_rescale > 0 and not skip_uncond:
            first_cond = torch.stack([out[sum(repeats[:i])] for i in range(batch)])
            denoised = rescale_cfg(x, sigma, first_cond, denoised, self.cfg_rescale)
        if self.mask is not None and not self.mask_before_denoising:
            denoised = self.init_latent * self.mask + (1 - self.mask) * denoised
        self.step += 1
        return denoised

    def subset(self, i: int) -> "CFGDenoiser":
        """Guidance for image i of the batch alone (its conds, uncond, image conditioning and mask)."""
        part = lambda t: None if t is None else t[i:i + 1]
        return CFGDenoiser(self.denoiser, lambda step: [self.conds_at(step)[i]], lambda step: self.uncond_at(step)[i:i + 1],
                           self.cfg_scale, self.cfg_rescale, self.s_min_uncond, part(self.image_cond), part(self.mask),
                           part(self.init_latent), self.mask_before_denoising, self.step, self.calls)

    def _run(self, x_in, sigma_in, cond_tensors, uncond, image_in) -> torch.Tensor:
        tokens = {c.shape[1] for c in cond_tensors} | ({uncond.shape[1]} if uncond is not None else set())
        n_cond = len(cond_tensors)
        rows = torch.arange(x_in.shape[0], device=x_in.device) >= n_cond  # True: a negative-prompt row
        if len(tokens) == 1:  # one batched UNet call for cond and uncond
            context = torch.cat(cond_tensors + ([uncond] if uncond is not None else []))
            self.calls.append(x_in.shape[0])
            return self.denoiser(x_in, sigma_in, context, image_in, rows)
        # different lengths (A1111's default without padding): conds and uncond run separately
        outs = []
        for i, c in enumerate(cond_tensors):
            self.calls.append(1)
            outs.append(self.denoiser(x_in[i:i + 1], sigma_in[i:i + 1], c,
                                      None if image_in is None else image_in[i:i + 1], rows[i:i + 1]))
        if uncond is not None:
            self.calls.append(x_in.shape[0] - n_cond)
            outs.append(self.denoiser(x_in[n_cond:], sigma_in[n_cond:], uncond,
                                      None if image_in is None else image_in[n_cond:], rows[n_cond:]))
        return torch.cat(outs)
