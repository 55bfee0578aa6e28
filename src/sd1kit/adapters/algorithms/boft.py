"""BOFT (LyCORIS `boft`): m butterfly factors of orthogonal blocks (`oft_blocks` [m, n, b, b], Cayley with the
alpha constraint). Factor i regroups W's rows with stride 2^i·b/2, turns each block of b rows by R_i and undoes the
regrouping. The multiplier acts per factor, R_i <- m·R_i + (1 − m)·I, as in LyCORIS, so the delta is not linear
in it."""

from __future__ import annotations

import torch

from sd1kit.adapters.algorithms.base import Algorithm, Delta
from sd1kit.adapters.algorithms.oft import cayley

KEYS = ("oft_blocks", "alpha", "rescale")


def delta(t, weight, multiplier) -> Delta:
    w = weight.float()
    blocks = t["oft_blocks"].float()
    m, n, b, _ = blocks.shape
    alpha = float(t["alpha"]) if "alpha" in t else 0.0
    r = cayley(blocks, alpha * w.shape[0] if alpha > 0 else 0.0)
    eye = torch.eye(b, dtype=r.dtype)
    r = multiplier * r + (1 - multiplier) * eye
    rows, rest = w.shape[0], w.shape[1:]
    x = w.reshape(rows, -1)
    for i in range(m):
        k = 2 ** i * b // 2
        g = x.reshape(rows // (2 * k), 2, k, -1).transpose(1, 2).reshape(rows, -1)  # the butterfly regrouping
        g = torch.einsum("nij,nj...->ni...", r[i], g.reshape(n, b, -1)).reshape(rows, -1)
        x = g.reshape(rows // (2 * k), k, 2, -1).transpose(1, 2).reshape(rows, -1)
    out = x.reshape(rows, *rest)
    if "rescale" in t:
        out = t["rescale"].float().reshape(-1, *[1] * (w.ndim - 1)) * out
    return Delta(out - w, multiplied=True)


ALGORITHM = Algorithm("boft", KEYS, lambda names: "oft_blocks" in names, delta)
