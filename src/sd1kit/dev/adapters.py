"""Synthetic LoRA / LyCORIS files for a given model, one algorithm at a time, in the layouts trainers write:
random factors of the shapes each algorithm stores, under kohya, LDM-style, LyCORIS or PEFT names."""

from __future__ import annotations

import json
import os

import torch

from sd1kit.adapters.names import _te_spellings, _unet_spellings
from sd1kit.formats.keys.diffusers import unet_keymap
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX
from sd1kit.models.configs import infer_unet_config

ALGORITHMS = ("lora", "locon-tucker", "dora", "loha", "loha-tucker", "lokr", "lokr-full", "ia3", "full", "norm",
              "glora", "oft", "boft")
NAMINGS = ("kohya", "ldm", "lycoris", "peft")
PEFT_NAMES = {"lora_up.weight": "lora_B.weight", "lora_down.weight": "lora_A.weight"}


def _small_factor(n: int) -> int:
    return next((f for f in (4, 2, 5, 3) if n % f == 0 and n // f >= 2), 1)


def _module_tensors(algorithm: str, shape: tuple[int, ...], rank: int, g: torch.Generator) -> dict | None:
    rnd = lambda *s: torch.randn(*s, generator=g) * 0.05
    out, rest = shape[0], shape[1:]
    conv = len(shape) == 4
    inn = rest[0] if rest else 0
    k = tuple(rest[1:])
    r = max(1, min(rank, out, inn or 1))
    alpha = torch.tensor(float(r) / 2)
    if algorithm == "norm":
        return {"w_norm": rnd(out), "b_norm": rnd(out)} if len(shape) == 1 else None
    if len(shape) == 1:
        return None
    if algorithm in ("lora", "dora"):
        t = {"lora_down.weight": rnd(r, inn, *k), "lora_up.weight": rnd(out, r, *([1, 1] if conv else [])),
             "alpha": alpha}
        if algorithm == "dora":
            t["dora_scale"] = 1 + rnd(out, *[1] * (len(shape) - 1))
        return t
    if algorithm == "locon-tucker":
        if not conv or k == (1, 1):
            return None
        return {"lora_down.weight": rnd(r, inn, 1, 1), "lora_mid.weight": rnd(r, r, *k),
                "lora_up.weight": rnd(out, r, 1, 1), "alpha": alpha}
    if algorithm == "loha":
        return {"hada_w1_a": rnd(out, r), "hada_w1_b": rnd(r, inn, *k), "hada_w2_a": rnd(out, r),
                "hada_w2_b": rnd(r, inn, *k), "alpha": alpha}
    if algorithm == "loha-tucker":
        if not conv or k == (1, 1):
            return None
        return {"hada_w1_a": rnd(r, out), "hada_w1_b": rnd(r, inn), "hada_t1": rnd(r, r, *k),
                "hada_w2_a": rnd(r, out), "hada_w2_b": rnd(r, inn), "hada_t2": rnd(r, r, *k), "alpha": alpha}
    if algorithm in ("lokr", "lokr-full"):
        a, c = _small_factor(out), _small_factor(inn)
        b, d = out // a, inn // c
        t = {"lokr_w1": rnd(a, c), "alpha": alpha}
        if algorithm == "lokr-full":
            t["lokr_w2"] = rnd(b, d, *k)
        else:
            t.update({"lokr_w2_a": rnd(b, r), "lokr_w2_b": rnd(r, d, *k)})
        return t
    if algorithm == "ia3":
        return {"weight": rnd(out), "on_input": torch.tensor(0)} if not conv else None
    if algorithm == "full":
        return {"diff": rnd(*shape)}
    if algorithm == "glora":
        if conv and k != (1, 1):
            return None
        return {"a1.weight": rnd(inn, r), "a2.weight": rnd(r, inn), "b1.weight": rnd(out, r),
                "b2.weight": rnd(r, inn), "alpha": alpha}
    if algorithm in ("oft", "boft"):
        b = 4 if out % 8 == 0 else 2
        n = out // b
        if algorithm == "oft":
            return {"oft_blocks": rnd(n, b, b), "alpha": torch.tensor(0.0)}
        return {"oft_blocks": rnd(2, n, b, b), "alpha": torch.tensor(0.0)}
    raise ValueError(f"unknown algorithm {algorithm!r}")


def _names(module: str, diffusers: str | None, naming: str) -> tuple[str, bool]:
    if module.startswith(TE_PREFIX):
        spellings = _te_spellings(module[len(TE_PREFIX):])
        index = {"kohya": 0, "ldm": 0, "lycoris": 0, "peft": 4}[naming]
    else:
        spellings = _unet_spellings(module[len(UNET_PREFIX):], diffusers)
        index = {"kohya": 0, "ldm": 1, "lycoris": 2, "peft": 5}[naming]
    return spellings[index], naming == "peft"


def synthetic_adapter(weight_shapes: dict[str, tuple[int, ...]], algorithm: str = "lora", naming: str = "kohya",
                      rank: int = 4, seed: int = 0, parts: tuple[str, ...] = ("unet", "te")) -> dict:
    """Adapter tensors for every UNet and text-encoder layer of a model that `algorithm` can patch."""
    g = torch.Generator().manual_seed(seed)
    keymap = unet_keymap(infer_unet_config(weight_shapes).layout)
    tensors = {}
    for key, shape in sorted(weight_shapes.items()):
        if not key.endswith(".weight") or "embeddings" in key:
            continue
        module = key[: -len(".weight")]
        if module.startswith(UNET_PREFIX) and "unet" in parts:
            d = keymap.to_diffusers(module[len(UNET_PREFIX):] + ".weight")
            diffusers = d[: -len(".weight")] if d else None
        elif module.startswith(TE_PREFIX) and "te" in parts:
            diffusers = None
        else:
            continue
        t = _module_tensors(algorithm, tuple(shape), rank, g)
        if t is None:
            continue
        name, peft = _names(module, diffusers, naming)
        for weight, value in t.items():
            tensors[f"{name}.{PEFT_NAMES.get(weight, weight) if peft else weight}"] = value.contiguous()
    return tensors


def write_synthetic_adapter(path: str | os.PathLike, weight_shapes: dict[str, tuple[int, ...]], **options) -> None:
    from sd1kit.formats.safetensors_io import write_safetensors

    tensors = synthetic_adapter(weight_shapes, **options)
    metadata = {"ss_network_module": "lycoris.kohya" if options.get("algorithm", "lora") != "lora" else "networks.lora",
                "ss_network_dim": str(options.get("rank", 4)), "ss_network_alpha": str(options.get("rank", 4) / 2),
                "ss_base_model_version": "sd_v1", "ss_output_name": os.path.splitext(os.path.basename(path))[0],
                "ss_tag_frequency": json.dumps({"1_data": {"1girl": 10, "solo": 7, "smile": 3}})}
    write_safetensors(path, tensors, metadata)
