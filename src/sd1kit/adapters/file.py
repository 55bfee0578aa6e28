"""An adapter file as modules: keys split into (module name, weight name) by the known weight names, every
trainer's spelling of those names normalised to kohya/LyCORIS's, tensors read on demand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sd1kit.adapters.algorithms import WEIGHT_NAMES
from sd1kit.errors import BadFileError
from sd1kit.formats.source import ModelSource, open_source
from sd1kit.metadata.limits import load_json

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
    found = group_modules(source)
    if not found.modules:
        raise BadFileError(path, "no LoRA/LyCORIS weights in this file")
    return found


def group_modules(source: ModelSource) -> AdapterFile:
    found = AdapterFile(Path(source.path), source)
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
    return found


def summarize(source: ModelSource) -> dict:
    """What `sd1kit inspect` shows of an adapter: modules per algorithm and part, ranks, alphas, and the kohya
    training metadata people look at."""
    from collections import Counter

    import torch

    from sd1kit.adapters.algorithms import algorithm_for

    found = group_modules(source)
    algorithms, parts, ranks, alphas = Counter(), Counter(), Counter(), Counter()
    for module, keys in found.modules.items():
        meta = {name: torch.empty(found.source.tensors[key].shape, device="meta") for name, key in keys.items()}
        algorithm = algorithm_for(set(keys), meta)
        algorithms[algorithm.name if algorithm else "unknown"] += 1
        parts["te" if "te_" in module.split(".")[0] or module.startswith(("text_encoder", "te.")) else "unet"] += 1
        rank = algorithm.rank(meta) if algorithm else None
        if rank:
            ranks[rank] += 1
        if "alpha" in keys and found.source.tensors[keys["alpha"]].numel <= 1:
            alphas[round(float(found.source.get_tensor(keys["alpha"])), 4)] += 1
    meta = source.metadata
    tags = Counter()
    try:
        for folder in load_json(meta.get("ss_tag_frequency", "{}"), "ss_tag_frequency").values():
            tags.update({str(k).strip(): int(v) for k, v in folder.items()})
    except (ValueError, AttributeError, TypeError):
        pass
    keep = ("ss_sd_model_name", "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_base_model_version",
            "ss_output_name", "ss_network_args", "ss_v2")
    return {"modules": len(found.modules), "algorithms": dict(algorithms), "parts": dict(parts),
            "ranks": {str(k): v for k, v in sorted(ranks.items())},
            "alphas": {str(k): v for k, v in sorted(alphas.items())},
            "bundled_embeddings": found.embeddings, "training": {k: meta[k] for k in keep if k in meta},
            "top_tags": [t for t, _ in tags.most_common(10)]}
