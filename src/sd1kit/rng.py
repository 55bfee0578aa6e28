"""Seeded noise with A1111's semantics (`modules/rng.py`, `modules/rng_philox.py`): the three sources CPU, GPU and
NV, per-image generators (seed + i), variation seeds mixed by slerp, "resize seed from", and the eta noise seed
delta (ENSD) that re-seeds every image's generator after its first noise. No global RNG is touched."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sd1kit.errors import Sd1kitError

RNG_SOURCES = ("GPU", "CPU", "NV")
_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_W = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))
_U32 = np.uint64(0xFFFFFFFF)
_INV_2_32 = float(np.float32(2.3283064e-10))  # 2**-32 as A1111 spells it (a float32 constant)
_INV_2_32_2PI = float(np.float32(2.3283064e-10 * 6.2831855))


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = 10) -> np.ndarray:
    """Philox-4x32 (Salmon et al. 2011). counter: uint32 [4, n]; key: uint32 [2, 1]. Returns uint32 [4, n]."""
    c = counter.astype(np.uint64)
    k = key.astype(np.uint64)
    for r in range(rounds):
        if r:
            k = (k + np.array(_W, dtype=np.uint64)[:, None]) & _U32
        p0, p1 = _M[0] * c[0], _M[1] * c[2]
        c = np.stack([(p1 >> np.uint64(32)) ^ c[1] ^ k[0], p1 & _U32, (p0 >> np.uint64(32)) ^ c[3] ^ k[1], p0 & _U32])
    return c.astype(np.uint32)


def _box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    u = x * _INV_2_32 + _INV_2_32 / 2
    v = y * _INV_2_32_2PI + _INV_2_32_2PI / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """A1111's "NV" generator: the normal numbers torch.randn gives on an NVIDIA GPU, on any device."""

    def __init__(self, seed: int):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.offset = 0

    def randn(self, shape) -> np.ndarray:
        n = int(np.prod(shape))
        counter = np.zeros((4, n), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(n, dtype=np.uint32)
        self.offset += 1
        key = np.array([[self.seed & 0xFFFFFFFF], [self.seed >> 32]], dtype=np.uint32)
        g = philox4x32(counter, key)
        return _box_muller(g[0].astype(np.float64), g[1].astype(np.float64)).reshape(shape)


def _check_source(source: str, device: torch.device) -> None:
    if source not in RNG_SOURCES:
        raise Sd1kitError("RNG", f"must be one of {', '.join(RNG_SOURCES)}, not {source!r}")
    if source == "GPU" and device.type not in ("cuda", "cpu"):
        raise Sd1kitError("RNG", f"GPU noise needs a CUDA or CPU device, not {device.type}")


def create_generator(seed: int, source: str, device: torch.device):
    if source == "NV":
        return PhiloxGenerator(seed)
    gen_device = device if source == "GPU" else torch.device("cpu")
    return torch.Generator(device=gen_device).manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def randn_from(generator, shape, source: str, device: torch.device) -> torch.Tensor:
    if isinstance(generator, PhiloxGenerator):
        return torch.from_numpy(generator.randn(shape)).to(device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def randn(seed: int, shape, source: str, device: torch.device) -> torch.Tensor:
    return randn_from(create_generator(seed, source, device), shape, source, device)


def slerp(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation as A1111's variation seeds use it (falls back to lerp for parallel vectors)."""
    low_norm, high_norm = low / low.norm(), high / high.norm()
    dot = (low_norm * high_norm).sum()
    if dot.abs() > 0.9995:
        return low * (1 - t) + high * t
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return torch.sin((1.0 - t) * omega) / so * low + torch.sin(t * omega) / so * high


@dataclass
class ImageRNG:
    """Noise for a batch, one generator per image, as A1111 draws it.

    shape: one image's latent shape [4, H/8, W/8]. `first()` gives the initial noise; `next()` the noise an
    ancestral sampler asks for at each step (from the same generators, re-seeded with seed + ENSD if set).
    """

    shape: tuple[int, ...]
    seeds: list[int]
    source: str = "GPU"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    subseeds: list[int] | None = None
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] | None = None  # (width, height) in pixels
    eta_noise_seed_delta: int = 0
    generators: list = field(init=False)
    _first_done: bool = field(init=False, default=False)

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        self.device = torch.device(self.device)
        _check_source(self.source, self.device)
        self.generators = [create_generator(s, self.source, self.device) for s in self.seeds]

    def _noise_shape(self) -> tuple[int, ...]:
        if not self.seed_resize_from or self.seed_resize_from[0] <= 0 or self.seed_resize_from[1] <= 0:
            return self.shape
        w, h = self.seed_resize_from
        return (self.shape[0], int(h) // 8, int(w) // 8)

    def _first_one(self, i: int, seed: int, generator) -> torch.Tensor:
        noise_shape = self._noise_shape()
        sub = None
        if self.subseeds is not None and self.subseed_strength != 0:
            subseed = self.subseeds[i] if i < len(self.subseeds) else 0
            sub = randn(subseed, noise_shape, self.source, self.device)
        if noise_shape != self.shape:
            noise = randn(seed, noise_shape, self.source, self.device)
        else:
            noise = randn_from(generator, self.shape, self.source, self.device)
        if sub is not None:
            noise = slerp(self.subseed_strength, noise, sub)
        if noise_shape == self.shape:
            return noise
        # "Resize seed from": the old size's noise pasted centred into the new size's noise
        x = randn_from(generator, self.shape, self.source, self.device)
        dx, dy = (self.shape[2] - noise_shape[2]) // 2, (self.shape[1] - noise_shape[1]) // 2
        w = noise_shape[2] if dx >= 0 else noise_shape[2] + 2 * dx
        h = noise_shape[1] if dy >= 0 else noise_shape[1] + 2 * dy
        tx, ty, sx, sy = max(dx, 0), max(dy, 0), max(-dx, 0), max(-dy, 0)
        x[:, ty:ty + h, tx:tx + w] = noise[:, sy:sy + h, sx:sx + w]
        return x

    def first(self) -> torch.Tensor:
        xs = [self._first_one(i, s, g) for i, (s, g) in enumerate(zip(self.seeds, self.generators))]
        if self.eta_noise_seed_delta:
            self.generators = [create_generator(s + self.eta_noise_seed_delta, self.source, self.device)
                               for s in self.seeds]
        self._first_done = True
        return torch.stack(xs)

    def next(self) -> torch.Tensor:
        if not self._first_done:
            return self.first()
        return torch.stack([randn_from(g, self.shape, self.source, self.device) for g in self.generators])

    def subset(self, i: int) -> "ImageRNG":
        """A view on image i alone, sharing its generator (after `first()`)."""
        view = ImageRNG.__new__(ImageRNG)
        view.__dict__.update(self.__dict__)
        view.seeds, view.generators = [self.seeds[i]], [self.generators[i]]
        view.subseeds = None if self.subseeds is None else self.subseeds[i:i + 1]
        return view
