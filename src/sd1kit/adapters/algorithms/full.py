"""Full / diff: the file holds ΔW (and Δbias) itself."""

from __future__ import annotations

from sd1kit.adapters.algorithms.base import Algorithm, Delta, fit

KEYS = ("diff", "diff_b", "alpha")


def delta(t, weight, multiplier) -> Delta:
    dw = t["diff"].float() if "diff" in t else None
    return Delta(fit(dw, weight) if dw is not None else None, t["diff_b"].float() if "diff_b" in t else None)


ALGORITHM = Algorithm("full", KEYS, lambda names: "diff" in names or "diff_b" in names, delta)
