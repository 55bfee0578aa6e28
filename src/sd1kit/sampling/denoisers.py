"""Denoisers: a model's raw output (epsilon or v) at a continuous sigma turned into x0-hat (k-diffusion's
`CompVisDenoiser` / `CompVisVDenoiser`, sigma_data = 1), and classifier-free guidance around it as A1111's
`CFGDenoiser` does it (cond and uncond batched, AND weights, skipping uncond at low sigma, masks), plus CFG
rescale (Lin et al. 2023)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from sd1kit.sampling.schedules import DiscreteSchedule

# model(x_in, t, context, image_cond[, uncond]) -> epsilon or v, the UNet's raw output (uncond, for models with
# `accepts_uncond`: which rows are the negative prompt's, e.g. ControlNet's "ControlNet is more important")
RawModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
PREDICTIONS = ("epsilon", "v")


def unet_model(unet) -> RawModel:
    """A diffusers UNet as a raw model. Inpainting UNets (9 input channels) get the mask and the masked image's
    latent concatenated after the scaled latent, as LDM's c_concat does; instruct-pix2pix (8) the image latent."""
    def run(x_in, t, context, image_cond, uncond=None, **unet_kwargs):
        if image_cond is not None:
            x_in = torch.cat([x_in, image_cond.to(x_in.dtype)], dim=1)
        dtype = unet.dtype  # the UNet may run in bf16/fp16 while the sampler keeps fp32 latents
        extra = {k: [v.to(dtype) for v in val] if isinstance(val, (list, tuple)) else val.to(dtype)
                 for k, val in unet_kwargs.items()}  # e.g. a ControlNet's residuals (pipeline.modifiers)
        return unet(x_in.to(dtype), t, encoder_hidden_states=context.to(dtype), **extra).sample.to(x_in.dtype)
    run.accepts_uncond = True  # the rows' roles go on to wrappers that need them (ControlNet)
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


class ModelCall(NamedTuple):
    """Which model call of a CFG step is running: `image`, the index in the generation's batch of the image it is
    for (None while one call covers several images), and `part`, the ordinal of the call among that image's (or
    batch's) calls in the step (cond rows and uncond rows of other token lengths, AND parts, run apart)."""

    image: int | None = None
    part: int = 0


_CALL: ContextVar[ModelCall] = ContextVar("sd1kit_model_call", default=ModelCall())


def current_call() -> ModelCall:
    """The model call a CFGDenoiser is making now (ModelCall() outside one). Raw models that keep state across
    calls (DeepCache) keep it per image and part with this."""
    return _CALL.get()


def current_image() -> int | None:
    """current_call().image: the image the raw model is called for while a CFGDenoiser calls it image by image
    (always, with `per_image`); None while it is called over several images at once."""
    return _CALL.get().image


@contextmanager
def _calling(**fields):
    token = _CALL.set(_CALL.get()._replace(**fields))
    try:
        yield
    finally:
        _CALL.reset(token)


def _row(t: torch.Tensor | None, i: int, batch: int) -> torch.Tensor | None:
    """Image i's part of a per-image tensor; one shared by the whole batch (a [1, ...] mask) stays whole."""
    if t is None or t.shape[0] != batch or batch == 1:
        return t
    return t[i:i + 1]


@dataclass
class CFGDenoiser:
    """Classifier-free guidance over a Denoiser, called by samplers as model(x, sigma).

    conds_at(step) gives, per image, a list of (conditioning [1, tokens, dim], weight) (several with AND);
    uncond_at(step) the negative conditioning [batch, tokens, dim]. `step` counts calls, as A1111's does.

    per_image (the default): with several images, the model is called image by image, each in the micro-batch it
    gets when generated alone (its cond rows, then its uncond row; split by token length the same way), so image
    i of a batch is bit for bit its seed generated alone: batched convolutions and matmuls round differently from
    single ones. False: one call over the whole batch (faster on a GPU; pictures may then differ from their seeds
    alone by a grey level). Masks, image conditioning, NGMS, AND weights and CFG rescale are per image either way.

    After each call `last_uncond_denoised` holds the x0-hat of the negative prompt's rows, shaped like x (where
    NGMS skipped the uncond, the cond x0-hat that stood in for it), before any inpainting mask is applied.
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
    per_image: bool = True  # model calls image by image, as each would run alone (see above)
    image_index: int = 0  # the generation's index of this batch's first image (subset(i) sets it): current_call
    last_uncond_denoised: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        conds, uncond = self.conds_at(self.step), self.uncond_at(self.step)
        # A1111 skips the uncond on odd steps below the NGMS sigma; the step decides for the whole batch
        skip_uncond = self.step % 2 == 1 and self.s_min_uncond > 0 and float(sigma[0]) < self.s_min_uncond
        batch = x.shape[0]
        if batch == 1 or self.per_image:
            parts = []
            for i in range(batch):
                with _calling(image=self.image_index + i):
                    parts.append(self._guide(x[i:i + 1], _row(sigma, i, batch), conds[i:i + 1], _row(uncond, i, batch),
                                             _row(self.image_cond, i, batch), _row(self.mask, i, batch),
                                             _row(self.init_latent, i, batch), skip_uncond))
            denoised = torch.cat([d for d, _ in parts]) if batch > 1 else parts[0][0]
            uncond_denoised = torch.cat([u for _, u in parts]) if batch > 1 else parts[0][1]
        else:
            with _calling(image=None):
                denoised, uncond_denoised = self._guide(x, sigma, conds, uncond, self.image_cond, self.mask,
                                                        self.init_latent, skip_uncond)
        self.last_uncond_denoised = uncond_denoised
        self.step += 1
        return denoised

    def _guide(self, x, sigma, conds, uncond, image_cond, mask, init_latent, skip_uncond):
        """Guided x0-hat and the uncond x0-hat of the images of x, in as few model calls as their token lengths
        allow."""
        if mask is not None and self.mask_before_denoising:
            # A1111 puts the clean init latent into the VP latent; its VE form is init * sqrt(1 + sigma^2)
            x = x * (1 - mask) + init_latent * mask * (_bc(sigma, x) ** 2 + 1) ** 0.5
        batch = x.shape[0]
        repeats = [len(c) for c in conds]
        x_in = torch.cat([x[i:i + 1].expand(n, *x.shape[1:]) for i, n in enumerate(repeats)] + ([] if skip_uncond else [x]))
        sigma_in = torch.cat([sigma[i:i + 1].expand(n) for i, n in enumerate(repeats)] + ([] if skip_uncond else [sigma]))
        cond_tensors = [c for per_image in conds for c, _ in per_image]
        image_in = None
        if image_cond is not None:
            image_cond = image_cond.expand(batch, *image_cond.shape[1:])
            image_in = torch.cat([image_cond[i:i + 1].expand(n, *image_cond.shape[1:])
                                  for i, n in enumerate(repeats)] + ([] if skip_uncond else [image_cond]))
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
        if mask is not None and not self.mask_before_denoising:
            denoised = init_latent * mask + (1 - mask) * denoised
        return denoised, uncond_out

    def subset(self, i: int) -> "CFGDenoiser":
        """Guidance for image i of the batch alone (its conds, uncond, image conditioning and mask); it counts its
        own steps from this one's."""
        n = len(self.conds_at(self.step))  # the batch size
        return CFGDenoiser(self.denoiser, lambda step: [self.conds_at(step)[i]], lambda step: self.uncond_at(step)[i:i + 1],
                           self.cfg_scale, self.cfg_rescale, self.s_min_uncond, _row(self.image_cond, i, n),
                           _row(self.mask, i, n), _row(self.init_latent, i, n), self.mask_before_denoising,
                           self.step, self.calls, per_image=self.per_image, image_index=self.image_index + i)

    def _run(self, x_in, sigma_in, cond_tensors, uncond, image_in) -> torch.Tensor:
        tokens = {c.shape[1] for c in cond_tensors} | ({uncond.shape[1]} if uncond is not None else set())
        n_cond = len(cond_tensors)
        rows = torch.arange(x_in.shape[0], device=x_in.device) >= n_cond  # True: a negative-prompt row
        if len(tokens) == 1:  # one batched UNet call for cond and uncond
            context = torch.cat(cond_tensors + ([uncond] if uncond is not None else []))
            self.calls.append(x_in.shape[0])
            with _calling(part=0):
                return self.denoiser(x_in, sigma_in, context, image_in, rows)
        # different lengths (A1111's default without padding): conds and uncond run separately
        outs = []
        for i, c in enumerate(cond_tensors):
            self.calls.append(1)
            with _calling(part=i):
                outs.append(self.denoiser(x_in[i:i + 1], sigma_in[i:i + 1], c,
                                          None if image_in is None else image_in[i:i + 1], rows[i:i + 1]))
        if uncond is not None:
            self.calls.append(x_in.shape[0] - n_cond)
            with _calling(part=n_cond):
                outs.append(self.denoiser(x_in[n_cond:], sigma_in[n_cond:], uncond,
                                          None if image_in is None else image_in[n_cond:], rows[n_cond:]))
        return torch.cat(outs)
