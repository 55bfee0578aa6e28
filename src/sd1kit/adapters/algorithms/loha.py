"""LoHa: ΔW = (alpha/r) · (w1a·w1b) ⊙ (w2a·w2b), each factor optionally in Tucker form with hada_t1/hada_t2."""

from __future__ import annotations

from sd1kit.adapters.algorithms.base import Algorithm, Delta, alpha_scale, f32, fit, tucker

KEYS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha", "scale", "dora_scale",
        "bias")


def rank(t) -> int:
    return t["hada_w1_b"].shape[0]


def _factor(t, k: int, weight):
    a, b = t[f"hada_w{k}_a"], t[f"hada_w{k}_b"]
    if f"hada_t{k}" in t:
        return tucker(t[f"hada_t{k}"], a, b)
    return (a @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:]) if b.ndim > 2 else a @ b


def delta(t, weight, multiplier) -> Delta:
    t = f32(t)
    dw = _factor(t, 1, weight) * _factor(t, 2, weight)
    return Delta(fit(dw * alpha_scale(t, rank(t)), weight), t.get("bias"))


ALGORITHM = Algorithm("loha", KEYS, lambda names: "hada_w1_a" in names, delta, rank)
