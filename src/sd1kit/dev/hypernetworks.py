"""Random-weight hypernetwork files, saved as A1111's `Hypernetwork.save` writes them (or, with `old_layout`, as
the NovelAI v1 leak's files are: `linear1`/`linear2` keys and no options), for the tiny model's widths."""

from __future__ import annotations

from pathlib import Path

import torch

from sd1kit.adapters.hypernetwork import Structure, dropout_structure
from sd1kit.formats.atomic import atomic_path

TINY_WIDTHS = (32, 64)  # the tiny UNet's context width (CLIP 32) and its attention widths (32, 64)


def _random_state(module: torch.nn.Module, generator: torch.Generator, std: float) -> dict:
    out = {}
    for key, value in module.state_dict().items():
        out["linear." + key] = (torch.randn(value.shape, generator=generator) * std
                    + (1.0 if key.endswith("weight") and value.ndim == 1 else 0.0))  # LayerNorm / PReLU weights ~1
    return out


def write_hypernetwork(out: str | Path, widths=TINY_WIDTHS, layer_structure=(1, 2, 1), activation: str | None = None,
                       layer_norm: bool = False, use_dropout: bool = False, last_layer_dropout: bool = False,
                       activate_output: bool = False, old_layout: bool = False, seed: int = 0, std: float = 0.1,
                       name: str | None = None) -> Path:
    """A hypernetwork .pt at `out`; `std`: the weights' spread (A1111 initialises with 0.01; larger shows more)."""
    out = Path(out)
    drop = dropout_structure(list(layer_structure), use_dropout, last_layer_dropout)
    structure = Structure(tuple(layer_structure), activation, layer_norm, activate_output, tuple(drop))
    generator = torch.Generator().manual_seed(seed)
    data: dict = {}
    for width in widths:
        pair = tuple(_random_state(structure.module(width), generator, std) for _ in range(2))
        if old_layout:
            pair = tuple({k.replace("linear.0.", "linear1.").replace("linear.1.", "linear2."): v
                          for k, v in s.items()} for s in pair)
        data[width] = pair
    if not old_layout:
        data.update(step=1000, name=name or out.stem, layer_structure=list(layer_structure),
                    activation_func=activation, is_layer_norm=layer_norm, weight_initialization="Normal",
                    sd_checkpoint="0123456789", sd_checkpoint_name="tiny", activate_output=activate_output,
                    use_dropout=use_dropout, dropout_structure=drop, last_layer_dropout=last_layer_dropout,
                    optional_info=None)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(data, tmp)
    return out
