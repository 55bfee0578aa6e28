"""Baking adapters into a checkpoint: the base streamed tensor by tensor (W + ΣΔW computed in fp32, written in the
tensor's dtype), so memory stays at a few tensors; the output records the base and the adapters with their
hashes and weights, keeps the base's metadata, gets sd1kit's own yaml where the base is v-prediction or had one
(formats.yaml_config.write_output_yaml; the base's yaml is checked, never copied), and is written atomically."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from sd1kit import __version__
from sd1kit.adapters.file import open_adapter
from sd1kit.adapters.stack import ActiveAdapter, AdapterStack
from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_hashes
from sd1kit.formats.safetensors_io import TORCH_TO_ST_DTYPE, write_safetensors_stream
from sd1kit.formats.source import open_source
from sd1kit.formats.yaml_config import in_channels_of, write_output_yaml
from sd1kit.models.detect import detect

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


class PatchedTensors:
    """Tensors of a model with a stack's deltas added, one key at a time (a module's weight and bias are patched
    together; the one asked for second is kept until it is asked for)."""

    def __init__(self, get: Callable[[str], torch.Tensor], has: Callable[[str], bool], stack: AdapterStack):
        self._get, self._has, self.stack = get, has, stack
        self.patched = set(stack.weight_keys())
        self._pending: dict[str, torch.Tensor] = {}

    def get(self, name: str) -> torch.Tensor:
        if name in self._pending:
            return self._pending.pop(name)
        tensor = self._get(name)
        if name not in self.patched:
            return tensor
        module, _, kind = name.rpartition(".")
        other = module + (".bias" if kind == "weight" else ".weight")
        weight = tensor if kind == "weight" else self._get(other)
        bias = tensor if kind == "bias" else (self._get(other) if self._has(other) else None)
        d_w, d_b = self.stack.delta(module, weight, bias)
        new_w = weight if d_w is None else (weight.float() + d_w).to(weight.dtype)
        new_b = bias if (d_b is None or bias is None) else (bias.float() + d_b).to(bias.dtype)
        if other in self.patched:
            self._pending[other] = new_b if kind == "weight" else new_w
        return new_w if kind == "weight" else new_b


@dataclass
class BakeResult:
    out: Path
    yaml: Path | None
    reports: list


def parse_adapter_arg(text: str) -> tuple[str, float]:
    """`FILE` or `FILE:weight`."""
    path, sep, weight = text.rpartition(":")
    if sep and path:
        try:
            return path, float(weight)
        except ValueError:
            pass
    return text, 1.0


def _same(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def bake(model: str | os.PathLike, adapters: list[tuple[str, float]], out: str | os.PathLike,
         dtype: str | None = None) -> BakeResult:
    model, out = Path(model), Path(out)
    if any(_same(Path(p), out) for p, _ in adapters) or _same(model, out):
        raise Sd1kitError(out, "the output would replace an input; choose another --out")
    source = open_source(model)
    if not source.safe:
        raise Sd1kitError(model, "unsafe pickle: refusing to load it")
    detection = detect(source)  # reads and checks the yaml beside the base: one sd1kit refuses stops the bake
    active = [ActiveAdapter(open_adapter(p), Path(p).stem, w, w) for p, w in adapters]
    stack = AdapterStack(active, source.shapes)
    stack.check_matched(model.name)
    patched = PatchedTensors(source.get_tensor, lambda k: k in source.tensors, stack)
    cast = DTYPES[dtype] if dtype else None

    def produce(name: str) -> torch.Tensor:
        tensor = patched.get(name)
        if cast is not None and tensor.is_floating_point():
            tensor = tensor.to(cast)
        return tensor

    def out_dtype(info) -> str:
        if cast is not None and info.dtype in ("F16", "BF16", "F32", "F64"):
            return TORCH_TO_ST_DTYPE[str(cast)]
        return info.dtype

    entries = [(name, out_dtype(info), info.shape) for name, info in source.tensors.items()]
    record = {"base": {"file": model.name, "sha256": file_hashes(model).sha256},
              "adapters": [{"file": Path(p).name, "sha256": file_hashes(p).sha256,
                            "addnet_hash": file_hashes(p, addnet=True).addnet, "weight": w} for p, w in adapters],
              "tool": f"sd1kit {__version__}"}
    metadata = {**{k: str(v) for k, v in source.metadata.items()}, "sd1kit_baked": json.dumps(record)}
    write_safetensors_stream(out, entries, produce, metadata, finish=stack.check_applied)
    prediction = detection.prediction if detection.kind in ("checkpoint", "unet") else None
    yaml_out = write_output_yaml(out, prediction, in_channels_of(source.shapes),
                                 detection.yaml.path if detection.yaml else None)
    return BakeResult(out, yaml_out, stack.reports)
