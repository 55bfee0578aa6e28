"""An adapter file as modules: keys split into (module name, weight name) by the known weight names, every
trainer's spelling of those names normalised to kohya/LyCORIS's, tensors read on demand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sd1kit.adapters.algorithms import WEIGHT_NAMES
from sd1kit.errors import BadFileError
from sd1kit.formats.source import ModelSource, open_source

# PEFT / diffusers spellings -> kohya's (lora_A = down, lora_B = up)
WEIGHT_SYNONYMS = {
    "lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight",
    "lora_A.default.weight": "lora_down.weight", "lora_B.default.weight": "lora_up.weight",
    "lora.down.weight": "lora_down.weight", "lora.up.weight": "lora_up.weight",
    "lora_linear_layer.down.weight": "lora_down.weight", "lora_linear_layer.up.weight": "lora_up.weight",
    "down.weight": "lora_down.weight", "up.weight": "lora_up.weight",
    "lora_magnitude_vector": "dora_scale", "lora_magnitude_vector.default": "dora_scale",
}
SUFFIXES = tuple(sorted({*WEIGHT_NAMES, *WEIGHT_SYNONYMS}, key=len, reverse=True))
BUNDLED_EMBEDDING = "bundle_emb."


def split_key(key: str) -> tuple[str, str] | None:
    """(module name, weight name in kohya spelling), or None for a key that is not an adapter weight."""
    for suffix in SUFFIXES:
        if key.endswith("." + suffix) and len(key) > len(suffix) + 1:
            return key[: -len(suffix) - 1], WEIGHT_SYNONYMS.get(suffix, suffix)
    return None


@dataclass
class AdapterFile:
    path: Path
    source: ModelSource
    modules: dict[str, dict[str, str]] = field(default_factory=dict)  # module -> weight name -> file key
    stray: list[str] = field(default_factory=list)  # keys that are no adapter weight
    embeddings: list[str] = field(default_factory=list)  # bundled textual inversions (A1111 bundle_emb.*)

    @property
    def metadata(self) -> dict[str, str]:
        return self.source.metadata

    def tensors(self, module: str) -> dict:
        return {name: self.source.get_tensor(key) for name, key in self.modules[module].items()}

    def shapes(self, module: str) -> dict[str, tuple[int, ...]]:
        return {name: self.source.tensors[key].shape for name, key in self.modules[module].items()}


def open_adapter(path: str | os.PathLike) -> AdapterFile:
    """Group an adapter file's keys into modules (safe loading for pickles, as everywhere)."""
    source = open_source(path)
    if not source.safe:
        raise BadFileError(path, "unsafe pickle: refusing to load it ("
                                 + ", ".join(source.unsafe_globals[:3]) + ")")
    found = AdapterFile(Path(path), source)
    for key in source.tensors:
        if key.startswith(BUNDLED_EMBEDDING):
            name = key[len(BUNDLED_EMBEDDING):].split(".", 1)[0]
            if name not in found.embeddings:
                found.embeddings.append(name)
            continue
        parts = split_key(key)
        if parts is None:
            found.stray.append(key)
            continue
        module, weight = parts
        found.modules.setdefault(module, {})[weight] = key
    if not found.modules:
        raise BadFileError(path, "no LoRA/LyCORIS weights in this file")
    return found
