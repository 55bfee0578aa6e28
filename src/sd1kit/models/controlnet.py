"""SD1 ControlNets from the three layouts they ship in (formats.md §11): lllyasviel's LDM names under
`control_model.`, the same names without the prefix (ControlNet 1.1 / A1111-compatible files), and diffusers
(`controlnet_cond_embedding`, `controlnet_down_blocks`, ...; folders or single files, e.g. QR Code Monster v2).
The network is diffusers' `ControlNetModel`, built from a config inferred from the tensor shapes."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from sd1kit.errors import BadFileError, Sd1kitError
from sd1kit.formats.keys.diffusers import unet_keymap
from sd1kit.formats.source import open_source
from sd1kit.models.configs import UNetConfig, infer_unet_config

LDM_PREFIX = "control_model."
HINT_CONVS = (0, 2, 4, 6, 8, 10, 12, 14)  # input_hint_block conv indices (SiLU between them)
DIFFUSERS_MARK = "controlnet_cond_embedding.conv_in.weight"


@dataclass(frozen=True)
class ControlNetConfig:
    unet: UNetConfig
    hint_channels: int
    embedding_channels: tuple[int, ...]

    def to_diffusers(self) -> dict:
        u = self.unet.to_diffusers()
        keep = ("in_channels", "down_block_types", "block_out_channels", "layers_per_block", "cross_attention_dim",
                "attention_head_dim", "norm_num_groups", "transformer_layers_per_block", "use_linear_projection")
        return {**{k: u[k] for k in keep}, "conditioning_channels": self.hint_channels,
                "conditioning_embedding_out_channels": self.embedding_channels}


def hint_key_map() -> dict[str, str]:
    names = {0: "conv_in", 14: "conv_out"} | {i: f"blocks.{(i - 2) // 2}" for i in HINT_CONVS[1:-1]}
    return {f"input_hint_block.{i}": f"controlnet_cond_embedding.{n}" for i, n in names.items()}


def ldm_to_diffusers_key(key: str, config: UNetConfig) -> str | None:
    """One LDM ControlNet key (no prefix) in diffusers' naming."""
    module, _, param = key.rpartition(".")
    hint = hint_key_map().get(module)
    if hint:
        return f"{hint}.{param}"
    if m := re.fullmatch(r"zero_convs\.(\d+)\.0", module):
        return f"controlnet_down_blocks.{m.group(1)}.{param}"
    if module == "middle_block_out.0":
        return f"controlnet_mid_block.{param}"
    return unet_keymap(config.layout).to_diffusers(key)


def infer_controlnet_config(shapes: dict[str, tuple[int, ...]], where: str = "controlnet") -> ControlNetConfig:
    """From LDM names without prefix; the UNet half is inferred as for a checkpoint's UNet."""
    conv_in = shapes.get("input_blocks.0.0.weight")
    if conv_in is None or "input_hint_block.0.weight" not in shapes:
        raise BadFileError(where, "not a ControlNet (no input_hint_block / input_blocks.0.0)")
    unet = infer_unet_config({**shapes, "out.2.weight": (conv_in[1], conv_in[0], 3, 3)}, prefix="", where=where)
    channels = tuple(shapes[f"input_hint_block.{i}.weight"][0] for i in (0, 4, 8, 12))
    return ControlNetConfig(unet, shapes["input_hint_block.0.weight"][1], channels)


def _diffusers_to_ldm_names(keys: list[str], where) -> dict[str, str]:
    """diffusers key -> LDM key (no prefix), through the inverse of the LDM -> diffusers map."""
    hint = {v: k for k, v in hint_key_map().items()}
    out = {}
    for key in keys:
        module, _, param = key.rpartition(".")
        if module in hint:
            out[key] = f"{hint[module]}.{param}"
        elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
            out[key] = f"zero_convs.{m.group(1)}.0.{param}"
        elif module == "controlnet_mid_block":
            out[key] = f"middle_block_out.0.{param}"
    return out


def _unet_part_to_ldm(keys: list[str], shapes, where) -> dict[str, str]:
    """The UNet-like keys of a diffusers ControlNet in LDM naming (layout inferred from the diffusers shapes)."""
    from sd1kit.formats.keys.diffusers import UNetLayout

    levels = len({int(m.group(1)) for k in keys if (m := re.match(r"down_blocks\.(\d+)\.", k))})
    layers = len({int(m.group(1)) for k in keys if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", k))})
    attention = tuple(any(k.startswith(f"down_blocks.{b}.attentions.") for k in keys) for b in range(levels))
    keymap = unet_keymap(UNetLayout(levels, layers, attention))
    out = {}
    for key in keys:
        ldm = keymap.to_ldm(key)
        if ldm is not None:
            out[key] = ldm
    return out


def controlnet_ldm_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Any layout -> (state dict with LDM names, no prefix; the layout's name)."""
    path = Path(path)
    if path.is_dir():  # a diffusers ControlNet folder: config.json + one weights file
        found = [path / n for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                                    "diffusion_pytorch_model.bin") if (path / n).is_file()]
        if not found:
            raise BadFileError(path, "no diffusion_pytorch_model weights in this ControlNet folder")
        path = found[0]
    source = open_source(path)
    if not source.safe:
        raise Sd1kitError(path, "unsafe pickle: references " + ", ".join(source.unsafe_globals[:3]))
    keys = list(source.tensors)
    if any(k.endswith(DIFFUSERS_MARK) for k in keys):
        strip = next(k for k in keys if k.endswith(DIFFUSERS_MARK))[: -len(DIFFUSERS_MARK)]
        local = {k[len(strip):]: k for k in keys if k.startswith(strip)}
        names = _diffusers_to_ldm_names(list(local), path)
        names.update(_unet_part_to_ldm([k for k in local if k not in names], None, path))
        missing = sorted(set(local) - set(names))
        if missing:
            raise BadFileError(path, f"diffusers ControlNet key {missing[0]!r} has no LDM counterpart")
        return {names[k]: source.get_tensor(local[k]) for k in local}, "diffusers"
    prefixed = [k for k in keys if k.startswith(LDM_PREFIX)]
    if prefixed:
        state = {k[len(LDM_PREFIX):]: source.get_tensor(k) for k in prefixed}
        layout = "ldm (control_model. prefix)"
    else:
        state = {k: source.get_tensor(k) for k in keys}
        layout = "ldm"
    if "difference" in state:
        raise Sd1kitError(path, "a 'difference' ControlNet stores weights relative to a base UNet; merge it with "
                                "its base first (not supported yet)")
    if "input_hint_block.0.weight" not in state:
        raise BadFileError(path, "not a ControlNet: no input_hint_block")
    return state, layout


@dataclass
class LoadedControlNet:
    module: torch.nn.Module
    name: str  # file stem, as A1111's ControlNet extension names models
    short_hash: str | None
    layout: str
    config: ControlNetConfig


_CACHE: dict[tuple, LoadedControlNet] = {}


def load_controlnet(path: str | os.PathLike, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> LoadedControlNet:
    from diffusers import ControlNetModel

    from sd1kit.formats.hashes import file_hashes, file_identity

    path = Path(path)
    if not path.exists():
        raise Sd1kitError(path, "no such ControlNet file or folder")
    key = (*file_identity(path), str(device), dtype)
    if key not in _CACHE:
        state, layout = controlnet_ldm_state(path)
        config = infer_controlnet_config({k: tuple(v.shape) for k, v in state.items()}, str(path))
        diffusers_state = {}
        for k, v in state.items():
            new = ldm_to_diffusers_key(k, config.unet)
            if new is None:
                raise BadFileError(path, f"ControlNet key {k!r} has no diffusers counterpart")
            diffusers_state[new] = v
        with torch.device("meta"):
            module = ControlNetModel(**config.to_diffusers())
        missing, unexpected = module.load_state_dict(diffusers_state, strict=False, assign=True)
        if missing or unexpected:
            raise BadFileError(path, f"ControlNet weights do not fit: {(missing or unexpected)[:2]}")
        short = file_hashes(path).sha256[:10] if path.is_file() else None
        _CACHE.clear()
        module = module.to(device=device, dtype=dtype).eval().requires_grad_(False)
        _CACHE[key] = LoadedControlNet(module, path.stem, short, layout, config)
    return _CACHE[key]


def diffusers_config_json(config: ControlNetConfig) -> str:
    return json.dumps({"_class_name": "ControlNetModel", **config.to_diffusers()}, indent=2, default=list)
