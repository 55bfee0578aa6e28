"""Extracting a LoRA from two checkpoints: for every layer a LoRA trainer targets, the truncated SVD of
(tuned − base) gives up·down of the requested rank (conv 3x3 layers only with a conv rank, as kohya's
LoCon); written with kohya's names and training metadata, alpha = rank (scale 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from sd1kit import __version__
from sd1kit.adapters.names import _te_spellings, _unet_spellings
from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_hashes
from sd1kit.formats.keys.diffusers import unet_keymap
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.formats.source import open_source
from sd1kit.models.configs import infer_unet_config

# kohya's LoRA targets: transformer blocks' linear layers, the attentions' proj_in/out, CLIP attention and MLP
UNET_LINEAR = (".attn1.", ".attn2.", ".ff.net.", ".proj_in", ".proj_out")
UNET_CONV = (".in_layers.2", ".out_layers.3", ".skip_connection", ".emb_layers.1", ".op.", ".conv.")  # with --conv-rank
TE_TARGETS = (".self_attn.", ".mlp.fc")


def _targets(shapes: dict[str, tuple[int, ...]], conv: bool) -> list[str]:
    keys = []
    for key, shape in shapes.items():
        if not key.endswith(".weight") or len(shape) not in (2, 4):
            continue
        if key.startswith(UNET_PREFIX):
            linear = any(p in key for p in UNET_LINEAR) and (len(shape) == 2 or shape[2:] == (1, 1))
            if linear or (conv and any(p in key for p in UNET_CONV)):
                keys.append(key)
        elif key.startswith(TE_PREFIX) and any(p in key for p in TE_TARGETS) and len(shape) == 2:
            keys.append(key)
    return sorted(keys)


def _low_rank(diff: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    flat = diff.flatten(1)
    rank = min(rank, *flat.shape)
    u, s, vh = torch.linalg.svd(flat, full_matrices=False)
    up = u[:, :rank] * s[:rank]
    down = vh[:rank]
    if diff.ndim == 4:
        return up.reshape(diff.shape[0], rank, 1, 1), down.reshape(rank, *diff.shape[1:])
    return up, down


def extract(base: str | os.PathLike, tuned: str | os.PathLike, out: str | os.PathLike, rank: int = 32,
            conv_rank: int | None = None, min_diff: float = 1e-6) -> dict:
    base, tuned, out = Path(base), Path(tuned), Path(out)
    if rank < 1 or (conv_rank is not None and conv_rank < 1):
        raise Sd1kitError("--rank", "ranks must be at least 1")
    a, b = open_source(base), open_source(tuned)
    for src in (a, b):
        if not src.safe:
            raise Sd1kitError(src.path, "unsafe pickle: refusing to load it")
    keymap = unet_keymap(infer_unet_config(a.shapes).layout)
    tensors, stats = {}, {"modules": 0, "skipped_same": 0}
    for key in _targets(a.shapes, conv_rank is not None):
        if key not in b.tensors or b.tensors[key].shape != a.tensors[key].shape:
            raise Sd1kitError(tuned, f"{key} is missing or of another shape than in {base.name}")
        diff = b.get_tensor(key).float() - a.get_tensor(key).float()
        if float(diff.abs().max()) <= min_diff:
            stats["skipped_same"] += 1
            continue
        module = key[: -len(".weight")]
        is_conv3 = diff.ndim == 4 and diff.shape[2:] != (1, 1)
        r = conv_rank if is_conv3 else rank
        up, down = _low_rank(diff, r)
        if module.startswith(UNET_PREFIX):
            rel = module[len(UNET_PREFIX):]
            name = _unet_spellings(rel, keymap.to_diffusers(key[len(UNET_PREFIX):])[: -len(".weight")])[0]
        else:
            name = _te_spellings(module[len(TE_PREFIX):])[0]
        tensors[f"{name}.lora_up.weight"] = up.contiguous().to(torch.float16)
        tensors[f"{name}.lora_down.weight"] = down.contiguous().to(torch.float16)
        tensors[f"{name}.alpha"] = torch.tensor(float(down.shape[0]), dtype=torch.float16)
        stats["modules"] += 1
    if not tensors:
        raise Sd1kitError(tuned, f"no layer differs from {base.name}: nothing to extract")
    metadata = {
        "ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(rank),
        "ss_base_model_version": "sd_v1", "ss_v2": "False", "ss_output_name": out.stem,
        "ss_sd_model_name": base.name,
        "sd1kit_extracted": json.dumps({"base": {"file": base.name, "sha256": file_hashes(base).sha256},
                                        "tuned": {"file": tuned.name, "sha256": file_hashes(tuned).sha256},
                                        "rank": rank, "conv_rank": conv_rank, "tool": f"sd1kit {__version__}"}),
    }
    if conv_rank is not None:
        metadata["ss_network_args"] = json.dumps({"conv_dim": str(conv_rank), "conv_alpha": str(conv_rank)})
    write_safetensors(out, tensors, metadata)
    return stats
