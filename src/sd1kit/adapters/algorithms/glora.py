"""GLoRA: ΔW = scale · (B + W·A), B and A low-rank. Two layouts exist, told apart by shapes as ComfyUI does:
current LyCORIS (a1 [in,r], a2 [r,in], b1 [out,r], b2 [r,in·k]) and old LyCORIS, what A1111 implements
(a1 [r,in], a2 [in,r], b1 [r,in·k], b2 [out,r])."""

from __future__ import annotations

import torch

from sd1kit.adapters.algorithms.base import Algorithm, Delta, alpha_scale, f32, fit

KEYS = ("a1.weight", "a2.weight", "b1.weight", "b2.weight", "bm.weight", "alpha", "scale", "dora_scale", "bias")


def _old_layout(a1, a2, b1, b2, weight) -> bool:
    old = b2.shape[1] == b1.shape[0] == a1.shape[0] == a2.shape[1]
    new = b2.shape[0] == b1.shape[1] == a1.shape[1] == a2.shape[0]
    if old and new:
        return a2.shape[0] == weight.shape[0] and weight.shape[0] == weight.shape[1]
    return old


def rank(t) -> int:
    a1, a2, b1, b2 = (t[k] for k in ("a1.weight", "a2.weight", "b1.weight", "b2.weight"))
    return a1.shape[0] if b2.shape[1] == b1.shape[0] == a1.shape[0] == a2.shape[1] else a2.shape[0]


def delta(t, weight, multiplier) -> Delta:
    t = f32(t)
    a1, a2, b1, b2 = (t[k].flatten(1) for k in ("a1.weight", "a2.weight", "b1.weight", "b2.weight"))
    w = weight.float().flatten(1)
    if _old_layout(a1, a2, b1, b2, weight):
        r = a1.shape[0]
        dw = b2 @ b1 + w @ (a2 @ a1) if w.shape[1] == a2.shape[0] else b2 @ b1
    else:
        r = a2.shape[0]
        dw = b1 @ b2 + _times_a(weight.float(), a1 @ a2)
    return Delta(fit(dw.reshape(weight.shape) * alpha_scale(t, r), weight), t.get("bias"))


def _times_a(weight: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """W·A with W's input axis contracted (convs keep their kernel)."""
    return torch.einsum("oi...,ij->oj...", weight, a).flatten(1)


ALGORITHM = Algorithm("glora", KEYS, lambda names: "a1.weight" in names and "b1.weight" in names, delta, rank)
