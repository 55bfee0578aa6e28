"""Merge methods as plain functions of one key's tensors (A first), each declared once with its parameters.
Where sd-mecha has the method, the arithmetic is the same as its implementation (tested against it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sd1kit.errors import Sd1kitError


def weighted_sum(a, b, alpha=0.5):
    """A·(1−α) + B·α (A1111 "Weighted sum"); α = 0 and 1 give A and B exactly."""
    if _is(alpha, 0.0):
        return a
    if _is(alpha, 1.0):
        return b
    return torch.lerp(a, b, alpha)


def add_difference(a, b, c, alpha=1.0):
    """A + α·(B − C) (A1111 "Add difference")."""
    if _is(alpha, 0.0):
        return a
    return a.addcmul(b - c, _t(alpha, a))


def no_interpolation(a):
    """A as it is (A1111 "No interpolation": only components swapped or a VAE baked)."""
    return a


def sum_twice(a, b, c, alpha=0.5, beta=0.5):
    """(A·(1−α) + B·α)·(1−β) + C·β (supermerger "sum twice")."""
    return torch.lerp(torch.lerp(a, b, alpha), c, beta)


def triple_sum(a, b, c, alpha=1 / 3, beta=1 / 3):
    """A·(1−α−β) + B·α + C·β (supermerger "triple sum")."""
    return a * (1 - alpha - beta) + b * alpha + c * beta


def train_difference(a, b, c, alpha=1.0):
    """A + (B − C)·mask, mask = 1.8·α·|B−A| / (|B−A| + |B−C|): the difference added where B moved away from A
    (supermerger; sd-mecha's train_difference_mask + add_difference)."""
    mask = alpha * 1.8 * torch.nan_to_num((b - a).abs() / ((b - a).abs() + (b - c).abs()), nan=0)
    return a.addcmul(b - c, mask)


def cosine_a(a, b, alpha=1.0):
    """Lerp toward B by 1 − clamp(cos(A, B) − α): the more A and B agree (per column), the more of A stays."""
    similarity = torch.nn.functional.cosine_similarity(
        torch.nn.functional.normalize(a, dim=0), torch.nn.functional.normalize(b, dim=0), dim=0)
    return _cosine_mix(a, b, alpha, similarity)


def cosine_b(a, b, alpha=1.0):
    """cosine_a with the similarity averaged with the whole tensors' cosine."""
    similarity = torch.nn.functional.cosine_similarity(a, b, dim=0)
    magnitude = torch.sum(a * b) / (torch.norm(a) * torch.norm(b))
    return _cosine_mix(a, b, alpha, (similarity + magnitude) / 2.0)


def _cosine_mix(a, b, alpha, similarity):
    return torch.lerp(a, b, 1 - torch.clamp(similarity - alpha, 0, 1))


def ties(a, *others, alpha=1.0, k=0.2, vote_sgn=False):
    """A + α·TIES(B − A, C − A, ...): each delta trimmed to its top-k share by magnitude, a sign elected per
    parameter (by count, or by mass with vote_sgn), agreeing entries averaged (Yadav et al. 2023)."""
    deltas = torch.stack([_top_k(o - a, k) for o in others])
    signs = torch.sign(deltas)
    final = torch.sign(torch.sum(deltas if vote_sgn else signs, dim=0))
    agree = (signs == final).float()
    merged = torch.nan_to_num((deltas * agree).sum(dim=0) / agree.sum(dim=0), nan=0, posinf=0, neginf=0)
    return a + merged * alpha


def dare(a, *others, alpha=1.0, probability=0.9, rescale=1.0, seed=0):
    """A + α·DARE(B − A, ...): each delta keeps an entry with probability 1 − p (numpy's generator seeded with
    `seed`, the same for every key, as sd-mecha's `dropout`), the kept entries are averaged and divided by
    (1 − p)^rescale (Yu et al. 2023)."""
    deltas = [o - a for o in others]
    rng = np.random.default_rng(seed)
    masks = [torch.from_numpy(rng.binomial(n=1, p=1 - probability, size=tuple(a.shape))).to(torch.bool)
             for _ in deltas]
    total = torch.zeros_like(a)
    for mask, delta in zip(masks, deltas):
        total[mask] += delta[mask]
    scale = 1.0 if probability == 1.0 else (1.0 - probability) ** rescale
    scale = scale if math.isfinite(scale) and scale != 0 else 1.0
    return a + total / sum(m.to(torch.int64) for m in masks).clamp(1) / scale * alpha


def _top_k(delta, k):
    count = max(int((1 - k) * delta.numel()), 1)
    threshold, _ = delta.flatten().abs().float().kthvalue(count)
    return delta * (delta.abs() >= threshold).float()


def _is(value, target: float) -> bool:
    return not torch.is_tensor(value) and math.isclose(float(value), target)


def _t(value, like):
    return value if torch.is_tensor(value) else torch.tensor(value, dtype=like.dtype)


@dataclass(frozen=True)
class Method:
    name: str
    function: Callable
    models: int  # how many models it takes (0: two or more)
    params: dict = field(default_factory=dict)  # name -> default
    blocked: tuple[str, ...] = ("alpha",)  # the parameters block weights may vary
    aliases: tuple[str, ...] = ()
    elementwise: bool = True  # each output entry depends only on the same entry of the inputs (can be chunked)


METHODS: tuple[Method, ...] = (
    Method("weighted-sum", weighted_sum, 2, {"alpha": 0.5}, aliases=("ws", "weighted_sum")),
    Method("add-difference", add_difference, 3, {"alpha": 1.0}, aliases=("ad", "add_difference")),
    Method("no-interpolation", no_interpolation, 1, {}, (), aliases=("copy", "none")),
    Method("sum-twice", sum_twice, 3, {"alpha": 0.5, "beta": 0.5}, ("alpha", "beta"), aliases=("sum_twice",)),
    Method("triple-sum", triple_sum, 3, {"alpha": 1 / 3, "beta": 1 / 3}, ("alpha", "beta"), aliases=("triple_sum",)),
    Method("train-difference", train_difference, 3, {"alpha": 1.0}, aliases=("train_difference", "td")),
    Method("cosine-a", cosine_a, 2, {"alpha": 1.0}, aliases=("cosine_a", "add-cosine-a"), elementwise=False),
    Method("cosine-b", cosine_b, 2, {"alpha": 1.0}, aliases=("cosine_b", "add-cosine-b"), elementwise=False),
    Method("ties", ties, 0, {"alpha": 1.0, "k": 0.2, "vote_sgn": False}, aliases=("ties-merging",),
           elementwise=False),
    Method("dare", dare, 0, {"alpha": 1.0, "probability": 0.9, "rescale": 1.0, "seed": 0},
           aliases=("dropout", "dare-merging"), elementwise=False),
)
_BY_NAME = {n: m for m in METHODS for n in (m.name, *m.aliases)}


def method(name: str) -> Method:
    found = _BY_NAME.get(name.strip().lower().replace(" ", "-"))
    if found is None:
        import difflib

        close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=1)
        raise Sd1kitError("method", f"unknown merge method {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                          + f" (methods: {', '.join(m.name for m in METHODS)})")
    return found
