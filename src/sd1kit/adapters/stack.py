"""Adapters stacked on one model: each file's modules resolved onto the model's modules, the summed delta of
every patched weight (adapters applied in order, as A1111 does, so that weight-dependent algorithms (IA3, OFT,
DoRA) see the weight the previous ones left), and a report of what was applied and what was not."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sd1kit.adapters.algorithms import Algorithm, algorithm_for
from sd1kit.adapters.algorithms.base import alpha_scale
from sd1kit.adapters.file import AdapterFile
from sd1kit.adapters.names import Target, adapter_names
from sd1kit.errors import Sd1kitError
from sd1kit.merge.blocks import block_of

INPAINT_CONV = "model.diffusion_model.input_blocks.0.0.weight"


@dataclass
class ActiveAdapter:
    file: AdapterFile
    name: str  # as the prompt names it
    te: float = 1.0
    unet: float = 1.0
    dyn: int | None = None  # DyLoRA: use the first `dyn` ranks
    blocks: dict[str, float] | None = None  # LoRA Block Weight: SD1 block -> extra multiplier


@dataclass
class AdapterReport:
    name: str
    path: str
    applied: dict[str, int] = field(default_factory=dict)  # algorithm -> modules
    unused: list[str] = field(default_factory=list)  # file keys that changed nothing
    mismatched: list[str] = field(default_factory=list)  # "module: why"
    embeddings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"name": self.name, "path": self.path, "applied": dict(self.applied), "unused": list(self.unused),
                "mismatched": list(self.mismatched), "bundled_embeddings": list(self.embeddings)}

    def summary(self) -> str:
        applied = ", ".join(f"{n} {a}" for a, n in sorted(self.applied.items())) or "nothing"
        extra = f"; {len(self.unused)} unused keys" if self.unused else ""
        extra += f"; {len(self.mismatched)} modules of the wrong shape" if self.mismatched else ""
        return f"{self.name}: applied {applied} modules{extra}"


@dataclass
class _Module:
    adapter: ActiveAdapter
    module: str  # its name in the file
    algorithm: Algorithm
    report: AdapterReport


def _family_hint(file: AdapterFile) -> str:
    keys = " ".join(list(file.modules)[:200])
    if "lora_te1_" in keys or "lora_te2_" in keys or "text_encoder_2" in keys:
        return " (its text-encoder names are SDXL's: lora_te1/lora_te2)"
    if "double_blocks" in keys or "single_blocks" in keys:
        return " (its names are FLUX's)"
    if "joint_blocks" in keys:
        return " (its names are SD3's)"
    return ""


class AdapterStack:
    def __init__(self, adapters: list[ActiveAdapter], weight_shapes: dict[str, tuple[int, ...]]):
        self.adapters = adapters
        self.shapes = weight_shapes
        names = adapter_names(weight_shapes)
        self.targets: dict[str, list[_Module]] = {}  # canonical module -> adapter modules, in order
        self.reports = [AdapterReport(a.name, str(a.file.path), embeddings=list(a.file.embeddings)) for a in adapters]
        self.parts: dict[str, str] = {}
        for adapter, report in zip(adapters, self.reports):
            file = adapter.file
            report.unused += file.stray
            for module, keys in file.modules.items():
                target = names.get(module)
                algorithm = algorithm_for(set(keys), _LazyShapes(file, module))
                if target is None or algorithm is None:
                    report.unused += sorted(keys.values())
                    continue
                self.targets.setdefault(target.module, []).append(_Module(adapter, module, algorithm, report))
                self.parts[target.module] = target.part

    def weight_keys(self) -> list[str]:
        """The model weights (and biases) the stack may change."""
        keys = []
        for module in self.targets:
            keys += [k for k in (module + ".weight", module + ".bias") if k in self.shapes]
        return keys

    def delta(self, module: str, weight: torch.Tensor, bias: torch.Tensor | None):
        """(ΔW, Δbias) of all adapters on one module, in fp32, or (None, None) when none fits."""
        w = weight.float()
        current = w.clone()
        b0 = bias.float() if bias is not None else None
        b = b0.clone() if b0 is not None else None
        touched = False
        for item in self.targets.get(module, []):
            multiplier = item.adapter.te if self.parts[module] == "te" else item.adapter.unet
            if item.adapter.blocks:
                multiplier *= item.adapter.blocks[block_of(module + ".weight")]
            try:
                d_w, d_b = _one(item, current, multiplier)
            except (RuntimeError, ValueError, IndexError, KeyError) as e:
                item.report.mismatched.append(f"{item.module}: {str(e).splitlines()[0][:120]}")
                continue
            if d_w is not None:
                if d_w.shape != current.shape and module + ".weight" == INPAINT_CONV and d_w.shape[1] == 4:
                    d_w = torch.nn.functional.pad(d_w, (0, 0, 0, 0, 0, current.shape[1] - 4))
                if d_w.shape != current.shape:
                    item.report.mismatched.append(f"{item.module}: delta {tuple(d_w.shape)} for weight "
                                                  f"{tuple(current.shape)}")
                    continue
                current = current + d_w
            if d_b is not None and b is not None and d_b.numel() == b.numel():
                b = b + d_b.reshape(b.shape)
            item.report.applied[item.algorithm.name] = item.report.applied.get(item.algorithm.name, 0) + 1
            touched = True
        if not touched:
            return None, None
        return current - w, (b - b0 if b is not None else None)

    def check_matched(self, model_name: str) -> None:
        """Before any work: a file whose module names match none of the model's is an error."""
        matched = {id(m.adapter) for ms in self.targets.values() for m in ms}
        for adapter in self.adapters:
            if id(adapter) not in matched:
                raise Sd1kitError(adapter.file.path, f"none of its {len(adapter.file.modules)} modules fit "
                                                     f"{model_name}{_family_hint(adapter.file)}")

    def check_applied(self) -> None:
        """A file none of whose modules fit is an error, not a silent no-op."""
        for adapter, report in zip(self.adapters, self.reports):
            if not report.applied:
                why = f"none of its {len(adapter.file.modules)} modules fit this SD1 model{_family_hint(adapter.file)}"
                if report.mismatched:
                    why += f"; e.g. {report.mismatched[0]}"
                raise Sd1kitError(adapter.file.path, why)


class _LazyShapes(dict):
    """The module's tensors for algorithm detection (only BOFT vs OFT needs one, by its rank)."""

    def __init__(self, file: AdapterFile, module: str):
        super().__init__()
        self.file, self.module = file, module

    def __getitem__(self, name):
        return torch.empty(self.file.shapes(self.module)[name], device="meta")


def _one(item: _Module, weight: torch.Tensor, multiplier: float):
    tensors = item.adapter.file.tensors(item.module)
    dora = tensors.pop("dora_scale", None)
    if item.adapter.dyn and item.algorithm.name == "lora":
        tensors["scale"] = torch.tensor(alpha_scale(tensors, tensors["lora_down.weight"].shape[0]))
        tensors["lora_up.weight"] = tensors["lora_up.weight"][:, : item.adapter.dyn]
        tensors["lora_down.weight"] = tensors["lora_down.weight"][: item.adapter.dyn]
    d = item.algorithm.delta(tensors, weight, multiplier)
    d_w = d.weight
    if d_w is not None and dora is not None:
        d_w = _dora(weight, d_w.reshape(weight.shape), dora.float()) * multiplier
    elif d_w is not None and not d.multiplied:
        d_w = d_w * multiplier
    d_b = d.bias * multiplier if d.bias is not None else None
    return d_w, d_b


def _dora(weight: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A1111's order: W'' = W + ΔW; W_dora = W''·dora_scale/‖W''‖; the delta is W_dora − W (the multiplier is
    applied after). The norm runs per output row when dora_scale is [out, 1, ...] (LyCORIS' default now), per
    input column when it is [1, in, ...] (A1111's and older files), decided by shape as ComfyUI does."""
    merged = weight + delta
    if scale.shape[0] == weight.shape[0] and (scale.ndim < 2 or scale.shape[1] == 1) and weight.shape[0] != 1:
        norm = merged.reshape(merged.shape[0], -1).norm(dim=1).reshape(-1, *[1] * (weight.ndim - 1))
    else:
        norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1)
        norm = norm.reshape(1, -1, *[1] * (weight.ndim - 2))
    return merged * (scale.reshape(norm.shape) / norm) - weight
