"""Norm layers (LyCORIS `norms`): ΔW = w_norm, Δb = b_norm for GroupNorm / LayerNorm affine parameters."""

from __future__ import annotations

from sd1kit.adapters.algorithms.base import Algorithm, Delta

KEYS = ("w_norm", "b_norm")


def delta(t, weight, multiplier) -> Delta:
    return Delta(t["w_norm"].float() if "w_norm" in t else None, t["b_norm"].float() if "b_norm" in t else None)


ALGORITHM = Algorithm("norm", KEYS, lambda names: "w_norm" in names or "b_norm" in names, delta)
