"""What an unknown checkpoint was made from, by its weights: deltas from a common base compared per SD1 block
(cosine similarity) with local candidates, and the mix of candidates that best explains it (least squares on the
deltas: for A·(1−r) + B·r it gives 1−r and r). Files are read one key at a time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sd1kit.errors import Sd1kitError
from sd1kit.formats.source import open_source
from sd1kit.merge.blocks import BLOCKS, block_of


@dataclass
class Fingerprint:
    base: str
    base_reason: str
    similarity: dict[str, float]  # candidate -> cosine of deltas over the whole model
    per_block: dict[str, dict[str, float]]  # candidate -> block -> cosine
    mix: dict[str, float]  # candidate -> weight in the best least-squares mix of the closest candidates
    explained: float  # share of the delta's energy the mix explains (1 = exactly)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"base": self.base, "base_reason": self.base_reason, "similarity": self.similarity,
                "per_block": self.per_block, "mix": self.mix, "explained": self.explained, "notes": self.notes}

    def summary(self) -> str:
        ranked = sorted(self.similarity.items(), key=lambda kv: -kv[1])
        parts = [f"{Path(n).name} ({s:.2f})" for n, s in ranked if s > 0.1]
        head = "closest to " + ", then ".join(parts) if parts else "no candidate is related"
        mix = " + ".join(f"{w:.2f} x {Path(n).name}" for n, w in self.mix.items())
        return head + (f"; best mix: {mix} (explains {self.explained:.0%} of its difference from "
                       f"{Path(self.base).name})" if mix else "")


def _keys(sources) -> list[str]:
    common = None
    for s in sources:
        keys = {k for k, i in s.tensors.items() if len(i.shape) >= 1 and i.dtype.startswith(("F", "BF"))}
        common = keys if common is None else common & keys
    return sorted(k for k in common if k.startswith(("model.diffusion_model.", "cond_stage_model.")))


def _medoid(sources, keys, sample: int = 40) -> int:
    """The candidate closest to all others on a sample of keys: the likely common base of fine-tunes."""
    picked = keys[:: max(1, len(keys) // sample)]
    n = len(sources)
    dist = torch.zeros(n, n, dtype=torch.float64)
    for key in picked:
        values = [s.get_tensor(key).double().flatten() for s in sources]
        for i in range(n):
            for j in range(i + 1, n):
                d = float(torch.sum((values[i] - values[j]) ** 2))
                dist[i, j] += d
                dist[j, i] += d
    return int(torch.argmin(dist.sum(dim=1)))


def fingerprint(target: str | os.PathLike, candidates: list[str | os.PathLike], base: str | None = None,
                top: int = 2) -> Fingerprint:
    paths = [str(Path(c)) for c in candidates if Path(c).resolve() != Path(target).resolve()]
    if len(paths) < 2 and base is None:
        raise Sd1kitError("fingerprint", "give at least two local checkpoints to compare with (or --base)")
    sources = [open_source(p) for p in [*paths, *([base] if base else [])]]
    target_source = open_source(target)
    for s in [target_source, *sources]:
        if not s.safe:
            raise Sd1kitError(s.path, "unsafe pickle: refusing to load it")
    keys = _keys([target_source, *sources])
    keys = [k for k in keys if all(s.tensors[k].shape == target_source.tensors[k].shape for s in sources)]
    if not keys:
        raise Sd1kitError(target, "no UNet or text-encoder weights in common with the candidates")
    if base:
        base_index, reason = len(sources) - 1, "given"
    else:
        base_index, reason = _medoid(sources, keys), "the candidate closest to all others"
    names = [p for i, p in enumerate([*paths, *([base] if base else [])]) if i != base_index]
    others = [s for i, s in enumerate(sources) if i != base_index]
    n = len(others)
    blocks = {b: {"tt": 0.0, "to": torch.zeros(n, dtype=torch.float64), "oo": torch.zeros(n, n, dtype=torch.float64)}
              for b in BLOCKS}
    for key in keys:
        b = sources[base_index].get_tensor(key).double().flatten()
        t = target_source.get_tensor(key).double().flatten() - b
        d = torch.stack([o.get_tensor(key).double().flatten() - b for o in others])
        acc = blocks[block_of(key)]
        acc["tt"] += float(t @ t)
        acc["to"] += d @ t
        acc["oo"] += d @ d.T
    tt = sum(a["tt"] for a in blocks.values())
    to = sum(a["to"] for a in blocks.values())
    oo = sum(a["oo"] for a in blocks.values())
    norm = lambda x: max(float(x), 1e-30) ** 0.5
    similarity = {names[i]: float(to[i]) / (norm(tt) * norm(oo[i, i])) for i in range(n)}
    per_block = {names[i]: {blk: float(a["to"][i]) / (norm(a["tt"]) * norm(a["oo"][i, i]))
                            for blk, a in blocks.items() if a["tt"] > 0 and a["oo"][i, i] > 0} for i in range(n)}
    ranked = sorted(range(n), key=lambda i: -similarity[names[i]])
    chosen = [i for i in ranked[:top] if similarity[names[i]] > 0.1]
    mix, explained = {}, 0.0
    if chosen:
        g = oo[chosen][:, chosen]
        w = torch.linalg.lstsq(g, to[chosen].unsqueeze(1)).solution.squeeze(1)
        mix = {names[i]: float(wi) for i, wi in zip(chosen, w)}
        residual = tt - 2 * float(w @ to[chosen]) + float(w @ g @ w)
        explained = 1 - max(residual, 0.0) / tt if tt > 0 else 1.0
    notes = []
    if tt == 0:
        notes.append(f"{Path(target).name} is identical to the base {Path(names and sources[base_index].path).name}")
    return Fingerprint(str(sources[base_index].path), reason, similarity, per_block, mix, explained, notes)
