"""LoKr: ΔW = scale · kron(w1, w2), w1 = lokr_w1 or w1_a·w1_b, w2 = lokr_w2, w2_a·w2_b (kernel in w2_b) or
Tucker(lokr_t2, w2_a, w2_b). scale = alpha / r with r the rank of a decomposed half (w1 first); when both
halves are full matrices the scale is 1 (alpha is ignored), as LyCORIS and A1111 do."""

from __future__ import annotations

import torch

from sd1kit.adapters.algorithms.base import Algorithm, Delta, alpha_scale, f32, fit, tucker

KEYS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t1", "lokr_t2", "alpha",
        "scale", "dora_scale", "bias")


def rank(t) -> int | None:
    if "lokr_w1_b" in t:
        return t["lokr_w1_b"].shape[0]
    if "lokr_w2_b" in t:
        return t["lokr_w2_b"].shape[0]
    return None


def _w2(t):
    if "lokr_w2" in t:
        return t["lokr_w2"]
    a, b = t["lokr_w2_a"], t["lokr_w2_b"]
    if "lokr_t2" in t:
        return tucker(t["lokr_t2"], a, b)
    return (a @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:]) if b.ndim > 2 else a @ b


def kron(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    while w1.ndim < w2.ndim:
        w1 = w1.unsqueeze(-1)
    return torch.kron(w1, w2.contiguous())


def delta(t, weight, multiplier) -> Delta:
    t = f32(t)
    w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
    w2 = _w2(t)
    dw = kron(w1, w2)
    if weight.ndim == 4 and dw.ndim == 2:  # a linear-shaped kron for a 1x1 conv
        dw = dw[:, :, None, None]
    return Delta(fit(dw * alpha_scale(t, rank(t)), weight), t.get("bias"))


ALGORITHM = Algorithm("lokr", KEYS, lambda names: "lokr_w1" in names or "lokr_w1_a" in names, delta, rank)
