"""DeepCache (Ma et al. 2023), a fast-mode switch: every `interval`-th UNet call runs whole and keeps the deep
features entering the last up block; the calls in between run only the shallow branch (conv_in, the time
embedding, the first down block and the last up block) on those cached features. Recorded in the infotext as
`DeepCache: N`; off (every call whole) is exact mode.

Calls are counted and cached per model call of a CFG step and input shapes: `current_call()` says which image
(the CFGDenoiser calls the UNet image by image by default) and which of its calls in the step (cond and uncond of
other token lengths, AND parts, run apart), so each image of a batch runs the same full/shallow sequence on its
own deep features as it does alone. Over a whole batch at once (per_image=False) the image is None."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sd1kit.sampling.denoisers import current_call


# what a ControlNet adds to a UNet call; the shallow branch takes the skip residuals it reads (the middle block's
# residual lands in the cached deep features, as in the full call that made them)
CONTROL_INPUTS = {"down_block_additional_residuals", "mid_block_additional_residual"}


class DeepCacheUNet:
    """Callable like a diffusers UNet2DConditionModel (returns an object with `.sample`)."""

    def __init__(self, unet, interval: int):
        self.unet, self.interval = unet, max(1, int(interval))
        self.calls: dict[tuple, int] = {}
        self.cache: dict[tuple, torch.Tensor] = {}
        self.full_calls = self.shallow_calls = 0

    @property
    def dtype(self):
        return self.unet.dtype

    def __call__(self, sample, timestep, encoder_hidden_states, **extra):
        key = (current_call(), tuple(sample.shape), tuple(encoder_hidden_states.shape))
        count = self.calls.get(key, 0)
        self.calls[key] = count + 1
        if count % self.interval == 0 or key not in self.cache or set(extra) - CONTROL_INPUTS:
            return self._full(key, sample, timestep, encoder_hidden_states, **extra)
        self.shallow_calls += 1
        return SimpleNamespace(sample=self._shallow(self.cache[key], sample, timestep, encoder_hidden_states,
                                                    extra.get("down_block_additional_residuals")))

    def _full(self, key, sample, timestep, context, **extra):
        captured = {}

        def keep(module, args, kwargs):
            captured["deep"] = kwargs.get("hidden_states", args[0] if args else None)

        handle = self.unet.up_blocks[-1].register_forward_pre_hook(keep, with_kwargs=True)
        try:
            out = self.unet(sample, timestep, encoder_hidden_states=context, **extra)
        finally:
            handle.remove()
        self.cache[key] = captured["deep"]
        self.full_calls += 1
        return out

    def _shallow(self, deep, sample, timestep, context, control=None):
        unet = self.unet
        timesteps = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
        timesteps = timesteps.reshape(-1).expand(sample.shape[0])
        emb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=sample.dtype))
        h = unet.conv_in(sample)
        first = unet.down_blocks[0]
        if getattr(first, "has_cross_attention", False):
            _, res = first(hidden_states=h, temb=emb, encoder_hidden_states=context)
        else:
            _, res = first(hidden_states=h, temb=emb)
        skips = ((h,) + tuple(res))[: len(unet.up_blocks[-1].resnets)]
        if control is not None:  # a ControlNet's residuals for the skips the last up block reads (diffusers adds
            skips = tuple(s + c for s, c in zip(skips, control))  # them to every down-block output the same way)
        last = unet.up_blocks[-1]
        if getattr(last, "has_cross_attention", False):
            h = last(hidden_states=deep, res_hidden_states_tuple=skips, temb=emb, encoder_hidden_states=context)
        else:
            h = last(hidden_states=deep, res_hidden_states_tuple=skips, temb=emb)
        if unet.conv_norm_out is not None:
            h = unet.conv_act(unet.conv_norm_out(h))
        return unet.conv_out(h)
