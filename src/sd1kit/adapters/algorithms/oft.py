"""Diagonal OFT (LyCORIS `diag_oft`, kohya OFT) and the old LyCORIS `oft_diag`: W's output rows in n blocks of
b, block k turned by an orthogonal R_k (Cayley transform of the skew part of `oft_blocks`, norm-constrained by
alpha; `oft_diag` stores R itself): W_k' = R_kᵀ·W_k, optional per-row `rescale`; ΔW = W' − W, times the
multiplier (R_m = I + m(R − I) makes it linear in m)."""

from __future__ import annotations

import torch

from sd1kit.adapters.algorithms.base import Algorithm, Delta

KEYS = ("oft_blocks", "oft_diag", "alpha", "rescale")


def cayley(blocks: torch.Tensor, constraint: float) -> torch.Tensor:
    eye = torch.eye(blocks.shape[-1], dtype=blocks.dtype)
    q = blocks - blocks.transpose(-1, -2)
    if constraint > 0:
        norm = torch.norm(q) + 1e-8
        if norm > constraint:
            q = q * constraint / norm
    return (eye + q) @ torch.linalg.inv(eye - q)


def rotations(t, out_dim: int) -> torch.Tensor:
    if "oft_diag" in t:
        return t["oft_diag"].float()
    alpha = float(t["alpha"]) if "alpha" in t else 0.0
    return cayley(t["oft_blocks"].float(), alpha * out_dim if alpha > 0 else 0.0)


def delta(t, weight, multiplier) -> Delta:
    w = weight.float()
    r = rotations(t, w.shape[0])
    n, b, _ = r.shape
    turned = torch.einsum("knm,kn...->km...", r, w.reshape(n, b, *w.shape[1:])).reshape(w.shape)
    if "rescale" in t:
        turned = t["rescale"].float().reshape(-1, *[1] * (w.ndim - 1)) * turned
    return Delta(turned - w)


ALGORITHM = Algorithm("oft", KEYS, lambda names: "oft_diag" in names or "oft_blocks" in names, delta,
                      lambda t: None)
