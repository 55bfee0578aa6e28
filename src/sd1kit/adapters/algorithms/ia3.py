"""(IA)³: ΔW = W ⊙ w, w scaling output rows (or input columns when `on_input` is set). No alpha."""

from __future__ import annotations

from sd1kit.adapters.algorithms.base import Algorithm, Delta

KEYS = ("weight", "on_input")


def delta(t, weight, multiplier) -> Delta:
    w = t["weight"].float()
    on_input = "on_input" in t and bool(t["on_input"].flatten()[0])
    shape = [1, -1] + [1] * (weight.ndim - 2) if on_input else [-1] + [1] * (weight.ndim - 1)
    return Delta(weight.float() * w.reshape(shape))


ALGORITHM = Algorithm("ia3", KEYS, lambda names: "on_input" in names, delta)
