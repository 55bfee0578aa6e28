"""Where samplers get their noise: never from the global RNG.

Ancestral samplers ask for fresh noise each step: `RNGNoise` draws it from A1111's per-image generators.
SDE samplers use Brownian-tree noise (torchsde), one tree per image seeded with that image's seed, as A1111's
`create_noise_sampler` does, so an image comes out the same alone or in a batch."""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from sd1kit.rng import ImageRNG

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class RNGNoise:
    def __init__(self, rng: ImageRNG, dtype: torch.dtype | None = None):
        self.rng, self.dtype = rng, dtype

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        noise = self.rng.next()
        return noise.to(self.dtype) if self.dtype is not None else noise


class BrownianNoise:
    """Normalised Brownian increments W(t1) - W(t0) / sqrt(|t1 - t0|), t = sigma, one tree per image."""

    def __init__(self, x: torch.Tensor, sigma_min, sigma_max, seeds: list[int]):
        import torchsde

        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {x.shape[0]}")
        # keep the sigmas' own dtype: the tree's subdivisions, and so its noise, depend on it
        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        self.trees = [torchsde.BrownianTree(t0, torch.zeros_like(x[0]), t1, entropy=int(s)) for s in seeds]

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        lo, hi, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        with warnings.catch_warnings():  # torchsde warns when a query lies a rounding error outside [t0, t1]
            warnings.filterwarnings("ignore", message="Should have", category=UserWarning)
            w = torch.stack([tree(lo, hi) for tree in self.trees]) * sign
        return w / (t1 - t0).abs().sqrt()
