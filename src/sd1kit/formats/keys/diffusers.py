"""LDM <-> diffusers module names for the SD1 UNet and VAE (formats.md §2), generated from the block layout.

The maps are built whole-segment by whole-segment from a `UNetLayout`/`VAELayout`, so they are bijections by
construction (tested both ways); no substring replacement chains.
"""

from __future__ import annotations

from dataclasses import dataclass

RESNET_LDM_TO_DIFFUSERS = {
    "in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}
VAE_RESNET_LDM_TO_DIFFUSERS = {"nin_shortcut": "conv_shortcut"}
VAE_ATTENTION_LDM_TO_DIFFUSERS = {
    "norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0",
}
VAE_ATTENTION_PROJECTIONS = ("q", "k", "v", "proj_out")  # 1x1 convs in LDM, linear layers in diffusers


@dataclass(frozen=True)
class UNetLayout:
    """Block structure of an SD1-style UNet: levels, resnets per level, attention per down level."""

    levels: int = 4
    layers: int = 2
    attention: tuple[bool, ...] = (True, True, True, False)


@dataclass(frozen=True)
class VAELayout:
    levels: int = 4
    layers: int = 2


def unet_module_map(layout: UNetLayout) -> dict[str, tuple[str, dict[str, str]]]:
    """LDM module prefix -> (diffusers module prefix, inner rename table)."""
    n, L = layout.levels, layout.layers
    m: dict[str, tuple[str, dict[str, str]]] = {
        "input_blocks.0.0": ("conv_in", {}),
        "time_embed.0": ("time_embedding.linear_1", {}),
        "time_embed.2": ("time_embedding.linear_2", {}),
        "middle_block.0": ("mid_block.resnets.0", RESNET_LDM_TO_DIFFUSERS),
        "middle_block.1": ("mid_block.attentions.0", {}),
        "middle_block.2": ("mid_block.resnets.1", RESNET_LDM_TO_DIFFUSERS),
        "out.0": ("conv_norm_out", {}),
        "out.2": ("conv_out", {}),
    }
    for b in range(n):
        for j in range(L):
            i = 1 + b * (L + 1) + j
            m[f"input_blocks.{i}.0"] = (f"down_blocks.{b}.resnets.{j}", RESNET_LDM_TO_DIFFUSERS)
            if layout.attention[b]:
                m[f"input_blocks.{i}.1"] = (f"down_blocks.{b}.attentions.{j}", {})
        if b < n - 1:
            m[f"input_blocks.{(b + 1) * (L + 1)}.0.op"] = (f"down_blocks.{b}.downsamplers.0.conv", {})
    for b in range(n):
        has_attention = layout.attention[n - 1 - b]
        for j in range(L + 1):
            i = b * (L + 1) + j
            m[f"output_blocks.{i}.0"] = (f"up_blocks.{b}.resnets.{j}", RESNET_LDM_TO_DIFFUSERS)
            if has_attention:
                m[f"output_blocks.{i}.1"] = (f"up_blocks.{b}.attentions.{j}", {})
        if b < n - 1:
            slot = 2 if has_attention else 1
            m[f"output_blocks.{b * (L + 1) + L}.{slot}.conv"] = (f"up_blocks.{b}.upsamplers.0.conv", {})
    return m


def vae_module_map(layout: VAELayout) -> dict[str, tuple[str, dict[str, str]]]:
    n, L = layout.levels, layout.layers
    m: dict[str, tuple[str, dict[str, str]]] = {
        "quant_conv": ("quant_conv", {}),
        "post_quant_conv": ("post_quant_conv", {}),
    }
    for part in ("encoder", "decoder"):
        m[f"{part}.conv_in"] = (f"{part}.conv_in", {})
        m[f"{part}.conv_out"] = (f"{part}.conv_out", {})
        m[f"{part}.norm_out"] = (f"{part}.conv_norm_out", {})
        m[f"{part}.mid.block_1"] = (f"{part}.mid_block.resnets.0", VAE_RESNET_LDM_TO_DIFFUSERS)
        m[f"{part}.mid.block_2"] = (f"{part}.mid_block.resnets.1", VAE_RESNET_LDM_TO_DIFFUSERS)
        m[f"{part}.mid.attn_1"] = (f"{part}.mid_block.attentions.0", VAE_ATTENTION_LDM_TO_DIFFUSERS)
    for i in range(n):
        for j in range(L):
            m[f"encoder.down.{i}.block.{j}"] = (f"encoder.down_blocks.{i}.resnets.{j}", VAE_RESNET_LDM_TO_DIFFUSERS)
        if i < n - 1:
            m[f"encoder.down.{i}.downsample.conv"] = (f"encoder.down_blocks.{i}.downsamplers.0.conv", {})
        up = n - 1 - i  # the decoder's levels are numbered from the bottom in LDM, from the top in diffusers
        for j in range(L + 1):
            m[f"decoder.up.{i}.block.{j}"] = (f"decoder.up_blocks.{up}.resnets.{j}", VAE_RESNET_LDM_TO_DIFFUSERS)
        if i > 0:
            m[f"decoder.up.{i}.upsample.conv"] = (f"decoder.up_blocks.{up}.upsamplers.0.conv", {})
    return m


class KeyMap:
    """Whole-key conversion between two spellings through a module-prefix table."""

    def __init__(self, modules: dict[str, tuple[str, dict[str, str]]]):
        self._forward = modules
        self._backward = {d: (l, {v: k for k, v in inner.items()}) for l, (d, inner) in modules.items()}
        self._forward_depths = sorted({p.count(".") + 1 for p in self._forward}, reverse=True)
        self._backward_depths = sorted({p.count(".") + 1 for p in self._backward}, reverse=True)

    def to_diffusers(self, key: str) -> str | None:
        return _convert(key, self._forward, self._forward_depths)

    def to_ldm(self, key: str) -> str | None:
        return _convert(key, self._backward, self._backward_depths)


def _convert(key: str, table, depths) -> str | None:
    parts = key.split(".")
    for depth in depths:
        if depth >= len(parts):
            continue
        hit = table.get(".".join(parts[:depth]))
        if hit is None:
            continue
        target, inner = hit
        rest = parts[depth:]
        for inner_depth in (2, 1):
            renamed = inner.get(".".join(rest[:inner_depth]))
            if renamed is not None and len(rest) > inner_depth:
                return ".".join([target, renamed, *rest[inner_depth:]])
        return ".".join([target, *rest])
    return None


def unet_keymap(layout: UNetLayout) -> KeyMap:
    return KeyMap(unet_module_map(layout))


def vae_keymap(layout: VAELayout) -> KeyMap:
    return KeyMap(vae_module_map(layout))


def is_vae_attention_projection(ldm_key: str) -> bool:
    """LDM VAE mid-attention q/k/v/proj_out weights: [c,c,1,1] in LDM, [c,c] in diffusers."""
    parts = ldm_key.split(".")
    return len(parts) >= 4 and parts[1:3] == ["mid", "attn_1"] and parts[3] in VAE_ATTENTION_PROJECTIONS \
        and parts[-1] == "weight"
