"""What every algorithm module declares: its name, the weight names it owns (once), how to recognise a module
of its kind, and its delta for one layer weight W."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Delta:
    weight: torch.Tensor | None  # ΔW with the algorithm's scale applied (times the multiplier if `multiplied`)
    bias: torch.Tensor | None = None  # Δbias (never scaled by alpha)
    multiplied: bool = False  # the multiplier is already inside (algorithms not linear in it)


@dataclass(frozen=True)
class Algorithm:
    name: str
    keys: tuple[str, ...]  # weight names of a module of this kind (kohya / LyCORIS spelling)
    detect: Callable[[set[str]], bool]
    delta: Callable[[Tensors, torch.Tensor, float], Delta]  # (module tensors, W, multiplier)
    rank: Callable[[Tensors], int | None] = lambda t: None


def alpha_scale(t: Tensors, rank: int | None) -> float:
    """A1111's calc_scale: an explicit `scale` wins, else alpha / rank; kohya and LyCORIS read a missing or zero
    alpha as alpha = rank (scale 1)."""
    if "scale" in t:
        return float(t["scale"])
    alpha = float(t["alpha"]) if "alpha" in t else 0.0
    if not rank or alpha == 0.0:
        return 1.0
    return alpha / rank


def tucker(core: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ_{p,q} core[p,q,...]·a[p,o]·b[q,i] -> [o, i, ...] (LoHa/LoKr Tucker form: a [r,o], b [r,i])."""
    return torch.einsum("pq...,po,qi->oi...", core, a, b)


def fit(delta: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """ΔW in W's shape (a [out,in] delta fits a 1x1 conv)."""
    return delta.reshape(weight.shape) if delta.numel() == weight.numel() else delta


def f32(t: Tensors) -> Tensors:
    return {k: v.float() if v.is_floating_point() else v for k, v in t.items()}
