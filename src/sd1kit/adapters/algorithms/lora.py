"""LoRA / LoCon (kohya, LyCORIS; DyLoRA files use the same keys): ΔW = (alpha/r) · up · down, the kernel in
`down` for convs; Tucker `lora_mid` for LoCon's CP form."""

from __future__ import annotations

from sd1kit.adapters.algorithms.base import Algorithm, Delta, alpha_scale, f32, fit

KEYS = ("lora_up.weight", "lora_down.weight", "lora_mid.weight", "alpha", "scale", "dora_scale", "bias")


def rank(t) -> int:
    return t["lora_down.weight"].shape[0]


def delta(t, weight, multiplier) -> Delta:
    t = f32(t)
    up, down = t["lora_up.weight"], t["lora_down.weight"]
    if "lora_mid.weight" in t:  # ΔW[o,i,...] = Σ mid[p,q,...] up[o,p] down[q,i]
        import torch

        dw = torch.einsum("pq...,op,qi->oi...", t["lora_mid.weight"], up.flatten(1), down.flatten(1))
    else:
        dw = (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], down.shape[1], *down.shape[2:])
    return Delta(fit(dw * alpha_scale(t, rank(t)), weight), t.get("bias"))


ALGORITHM = Algorithm("lora", KEYS, lambda names: "lora_up.weight" in names and "lora_down.weight" in names,
                      delta, rank)
