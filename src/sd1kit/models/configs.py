"""Network configurations inferred from tensor shapes (formats.md §2), for any width of the SD1 topology.

A tiny random-weight model and a real 2 GB checkpoint go through exactly this code. What shapes cannot tell
(norm groups, attention heads) is a fact of the SD1 family, kept here as constants.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Mapping

from sd1kit.errors import BadFileError
from sd1kit.formats.keys.diffusers import UNetLayout, VAELayout
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX, VAE_PREFIX

Shapes = Mapping[str, tuple[int, ...]]

SD1_NORM_GROUPS = 32
SD1_UNET_HEADS = 8
CLIP_HEAD_DIM = 64
VAE_SCALING_FACTOR = 0.18215


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int
    out_channels: int
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[bool, ...]
    transformer_depth: int
    context_dim: int
    linear_projection: bool
    num_heads: int = SD1_UNET_HEADS

    @property
    def layout(self) -> UNetLayout:
        return UNetLayout(len(self.channel_mult), self.num_res_blocks, self.attention_levels)

    def to_diffusers(self) -> dict:
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.attention_levels)
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.attention_levels))
        return dict(
            sample_size=64, in_channels=self.in_channels, out_channels=self.out_channels,
            down_block_types=down, up_block_types=up,
            block_out_channels=tuple(self.model_channels * m for m in self.channel_mult),
            layers_per_block=self.num_res_blocks, cross_attention_dim=self.context_dim,
            attention_head_dim=self.num_heads, norm_num_groups=SD1_NORM_GROUPS,
            transformer_layers_per_block=self.transformer_depth, use_linear_projection=self.linear_projection,
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VAEConfig:
    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    z_channels: int
    in_channels: int = 3

    @property
    def layout(self) -> VAELayout:
        return VAELayout(len(self.ch_mult), self.num_res_blocks)

    def to_diffusers(self) -> dict:
        n = len(self.ch_mult)
        return dict(
            in_channels=self.in_channels, out_channels=self.in_channels,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(self.ch * m for m in self.ch_mult), layers_per_block=self.num_res_blocks,
            latent_channels=self.z_channels, norm_num_groups=SD1_NORM_GROUPS, sample_size=512,
            scaling_factor=VAE_SCALING_FACTOR,
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TextEncoderConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    max_positions: int

    @property
    def num_heads(self) -> int:
        return max(1, self.hidden_size // CLIP_HEAD_DIM)

    def to_transformers(self) -> dict:
        return dict(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            max_position_embeddings=self.max_positions, hidden_act="quick_gelu", projection_dim=self.hidden_size,
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "num_heads": self.num_heads}


def _need(shapes: Shapes, key: str, where: str) -> tuple[int, ...]:
    shape = shapes.get(key)
    if shape is None:
        raise BadFileError(where, f"missing tensor {key!r}: cannot infer the network's configuration")
    return tuple(shape)


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := rx.match(k))})


def infer_unet_config(shapes: Shapes, prefix: str = UNET_PREFIX, where: str = "model") -> UNetConfig:
    p = re.escape(prefix)
    conv_in = _need(shapes, prefix + "input_blocks.0.0.weight", where)
    out = _need(shapes, prefix + "out.2.weight", where)
    mc = conv_in[0]
    ops = _indices(shapes, p + r"input_blocks\.(\d+)\.0\.op\.weight")
    blocks = _indices(shapes, p + r"input_blocks\.(\d+)\.")
    layers = (ops[0] - 1) if ops else len(blocks) - 1
    levels = len(blocks) // (layers + 1) if layers > 0 else 0
    if layers < 1 or levels < 1 or len(blocks) != levels * (layers + 1):
        raise BadFileError(where, "UNet input blocks do not form an SD1-style layout")
    mult, attention = [], []
    for b in range(levels):
        first = f"{prefix}input_blocks.{1 + b * (layers + 1)}"
        mult.append(_need(shapes, first + ".0.out_layers.3.weight", where)[0] // mc)
        attention.append(first + ".1.proj_in.weight" in shapes)
    attn_level = next((b for b, a in enumerate(attention) if a), None)
    if attn_level is None:
        raise BadFileError(where, "UNet without cross-attention: not an SD-style text-to-image UNet")
    first_attn = f"{prefix}input_blocks.{1 + attn_level * (layers + 1)}.1."
    depth = len(_indices(shapes, re.escape(first_attn) + r"transformer_blocks\.(\d+)\."))
    context = _need(shapes, first_attn + "transformer_blocks.0.attn2.to_k.weight", where)[1]
    proj_rank = len(_need(shapes, first_attn + "proj_in.weight", where))
    return UNetConfig(conv_in[1], out[0], mc, tuple(mult), layers, tuple(attention), depth, context,
                      linear_projection=proj_rank == 2)


def infer_vae_config(shapes: Shapes, prefix: str = VAE_PREFIX, where: str = "model") -> VAEConfig:
    conv_in = _need(shapes, prefix + "encoder.conv_in.weight", where)
    levels = _indices(shapes, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    layers = _indices(shapes, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.")
    if not levels or not layers:
        raise BadFileError(where, "VAE encoder without down blocks")
    ch = conv_in[0]
    mult = tuple(_need(shapes, f"{prefix}encoder.down.{i}.block.0.conv1.weight", where)[0] // ch for i in levels)
    z = _need(shapes, prefix + "decoder.conv_in.weight", where)[1]
    return VAEConfig(ch, mult, len(layers), z, conv_in[1])


def infer_text_encoder_config(shapes: Shapes, prefix: str = TE_PREFIX, where: str = "model") -> TextEncoderConfig:
    tokens = _need(shapes, prefix + "embeddings.token_embedding.weight", where)
    positions = _need(shapes, prefix + "embeddings.position_embedding.weight", where)
    layers = _indices(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
    fc1 = _need(shapes, prefix + "encoder.layers.0.mlp.fc1.weight", where)
    return TextEncoderConfig(tokens[0], tokens[1], fc1[0], len(layers), positions[0])


# Full-size SD1 configurations, for the header manifest and benchmarks.
SD1_UNET = UNetConfig(4, 4, 320, (1, 2, 4, 4), 2, (True, True, True, False), 1, 768, False)
SD1_VAE = VAEConfig(128, (1, 2, 4, 4), 2, 4)
SD1_TEXT_ENCODER = TextEncoderConfig(49408, 768, 3072, 12, 77)
