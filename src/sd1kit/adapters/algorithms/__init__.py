"""One module per LoRA / LyCORIS algorithm; a module of a file is matched to the first algorithm that
recognises its weight names (so one file may mix algorithms)."""

from __future__ import annotations

from sd1kit.adapters.algorithms import boft, full, glora, ia3, loha, lokr, lora, norm, oft
from sd1kit.adapters.algorithms.base import Algorithm, Delta

ALGORITHMS: tuple[Algorithm, ...] = (lora.ALGORITHM, loha.ALGORITHM, lokr.ALGORITHM, glora.ALGORITHM,
                                     ia3.ALGORITHM, full.ALGORITHM, norm.ALGORITHM, oft.ALGORITHM)
WEIGHT_NAMES = tuple(sorted({k for a in ALGORITHMS + (boft.ALGORITHM,) for k in a.keys}, key=len, reverse=True))


def algorithm_for(names: set[str], tensors) -> Algorithm | None:
    if "oft_blocks" in names and tensors["oft_blocks"].ndim == 4:
        return boft.ALGORITHM
    return next((a for a in ALGORITHMS if a.detect(names)), None)


__all__ = ["ALGORITHMS", "WEIGHT_NAMES", "Algorithm", "Delta", "algorithm_for"]
