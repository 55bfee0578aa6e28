"""A1111 hypernetworks (`<hypernet:NAME:STRENGTH>`): the `.pt` files A1111's
`modules/hypernetworks/hypernetwork.py` saves (and the NovelAI v1 leak shipped), loaded through the pickle scanner,
and applied to the UNet's attention as A1111 applies them.

A file is a dict: for each context width it serves (320, 640, 768, 1024, 1280 in SD1: the self-attention widths
and the text encoder's), a pair of state dicts, one module for keys and one for values; beside them the options
it was made with: `layer_structure` (width multipliers, 1 at both ends; default [1, 2, 1]), `activation_func`
("linear"/None, "relu", "leakyrelu", "elu", "swish" = Hardswish, "tanh", "sigmoid", or any torch.nn activation by
its lower-case class name), `is_layer_norm`, `activate_output` (default True), `use_dropout` /
`last_layer_dropout` / `dropout_structure` (dropout: a no-op in inference, but it takes a place in the module list,
so the weights' keys depend on it). The NovelAI leak's files use the first layout, `linear1`/`linear2`.

Each module is a residual MLP: `x + mlp(x) * strength`. Every attention of the UNet (self-attention included: its
context is its own input) passes its context through the hypernetworks in prompt order, separately for the key and
the value projection: `k = to_k(hk_n(...hk_1(context)))`, `v = to_v(hv_n(...hv_1(context)))`; a width no module
serves passes unchanged. Hooks on `to_k` / `to_v` do it, removed exactly afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sd1kit.errors import BadFileError, Sd1kitError
from sd1kit.install.place import files_under, models_root

SUFFIXES = (".pt",)  # A1111 lists models/hypernetworks/**/*.pt
FOLDER = "hypernetworks"
# A1111's own names; every other torch.nn activation is found by its lower-case class name
ACTIVATIONS = {"relu": torch.nn.ReLU, "leakyrelu": torch.nn.LeakyReLU, "elu": torch.nn.ELU,
               "swish": torch.nn.Hardswish, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
OLD_KEYS = {"linear1.weight": "linear.0.weight", "linear1.bias": "linear.0.bias",
            "linear2.weight": "linear.1.weight", "linear2.bias": "linear.1.bias"}
MAX_WIDTH = 8192


def _activation(name: str | None, where) -> type | None:
    if name is None or name == "linear":
        return None
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    import torch.nn.modules.activation as acts

    found = {n.lower(): c for n, c in vars(acts).items() if isinstance(c, type) and c.__module__ == acts.__name__}
    if name in found:
        try:
            found[name]()  # A1111 builds it without arguments; one that needs some fails there too
            return found[name]
        except TypeError:
            pass
    raise BadFileError(where, f"unsupported activation function {str(name)[:40]!r}")


def dropout_structure(layers: list, use_dropout: bool, last_layer_dropout: bool) -> list[float]:
    """A1111's `parse_dropout_structure`, for files that do not store one."""
    if not use_dropout:
        return [0.0] * len(layers)
    return [0.0, *[0.3] * (len(layers) - 3), 0.3 if last_layer_dropout else 0.0, 0.0]


@dataclass(frozen=True)
class Structure:
    """The options a hypernetwork file was saved with (A1111's defaults where it says nothing)."""

    layers: tuple[float, ...] = (1, 2, 1)
    activation: str | None = None
    layer_norm: bool = False
    activate_output: bool = True
    dropout: tuple[float, ...] = (0.0, 0.0, 0.0)

    @classmethod
    def of(cls, d: dict, where) -> "Structure":
        layers = d.get("layer_structure") or [1, 2, 1]
        if not isinstance(layers, (list, tuple)) or len(layers) < 2 or not all(
                isinstance(x, (int, float)) and 0 < x <= 64 for x in layers) or layers[0] != 1 or layers[-1] != 1:
            raise BadFileError(where, f"layer_structure {str(layers)[:60]} is not a list of widths from 1 to 1")
        drop = d.get("dropout_structure")
        use = bool(any(drop)) if isinstance(drop, (list, tuple)) and drop else bool(d.get("use_dropout", False))
        if not (isinstance(drop, (list, tuple)) and len(drop) == len(layers)):
            drop = dropout_structure(list(layers), use, bool(d.get("last_layer_dropout", False)))
        activation = d.get("activation_func")
        if activation is not None and not isinstance(activation, str):
            raise BadFileError(where, f"activation_func is {type(activation).__name__}, not a name")
        _activation(activation, where)
        return cls(tuple(layers), activation, bool(d.get("is_layer_norm", False)),
                   bool(d.get("activate_output", True)), tuple(float(x) for x in drop))

    def module(self, width: int) -> torch.nn.Sequential:
        """The module list A1111 builds for `width`: Linear, then its activation (not after the last Linear
        unless activate_output), LayerNorm, Dropout, in that order after each Linear."""
        parts, n = [], len(self.layers)
        act = _activation(self.activation, "hypernetwork")
        for i in range(n - 1):
            parts.append(torch.nn.Linear(int(width * self.layers[i]), int(width * self.layers[i + 1])))
            if act is not None and (i < n - 2 or self.activate_output):
                parts.append(act())
            if self.layer_norm:
                parts.append(torch.nn.LayerNorm(int(width * self.layers[i + 1])))
            if self.dropout[i + 1] > 0:
                parts.append(torch.nn.Dropout(p=self.dropout[i + 1]))
        return torch.nn.Sequential(*parts)

    def as_json(self) -> dict:
        return {"layer_structure": list(self.layers), "activation_func": self.activation or "linear",
                "layer_norm": self.layer_norm, "activate_output": self.activate_output,
                "dropout_structure": list(self.dropout)}


@dataclass
class Hypernetwork:
    path: Path
    name: str  # the file's own `name` (A1111 shows it), else the file stem
    structure: Structure
    modules: dict[int, tuple[torch.nn.Sequential, torch.nn.Sequential]]  # width -> (keys, values), float32
    step: int | None = None
    trained_on: str | None = None
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        params = sum(p.numel() for pair in self.modules.values() for m in pair for p in m.parameters())
        return {"name": self.name, **self.structure.as_json(), "widths": sorted(self.modules),
                "parameters": params, "step": self.step, "sd_checkpoint_name": self.trained_on}


def _load_pair(width, pair, structure: Structure, where) -> tuple[torch.nn.Sequential, ...]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(s, dict) for s in pair):
        raise BadFileError(where, f"width {width}: not a pair of state dicts (keys, values)")
    if not 0 < width <= MAX_WIDTH:
        raise BadFileError(where, f"width {width} is out of range")
    out = []
    for which, state in zip(("keys", "values"), pair):
        state = {OLD_KEYS.get(k, k): v for k, v in state.items()}  # A1111's keys: its module's `linear` list
        state = {k[len("linear."):] if isinstance(k, str) and k.startswith("linear.") else k: v
                 for k, v in state.items()}
        module = structure.module(width)
        try:
            module.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise BadFileError(where, f"width {width} {which}: weights do not fit its structure ({first})") from None
        out.append(module.float().eval().requires_grad_(False))
    return tuple(out)


def load_hypernetwork(path: str | os.PathLike) -> Hypernetwork:
    """A hypernetwork file, through the pickle scanner; one BadFileError line for anything that is not one."""
    from sd1kit.formats.ckpt import load_torch_file

    path = Path(path)
    data = load_torch_file(path)
    if not isinstance(data, dict):
        raise BadFileError(path, "not a hypernetwork (not a dict)")
    structure = Structure.of(data, path)
    widths = [k for k in data if isinstance(k, int) and not isinstance(k, bool)]
    if not widths:
        raise BadFileError(path, "not a hypernetwork: no width keys (320, 768, ...)")
    with torch.inference_mode(False):
        modules = {w: _load_pair(w, data[w], structure, path) for w in sorted(widths)}
    name = data.get("name") if isinstance(data.get("name"), str) and data.get("name") else path.stem
    step = data.get("step") if isinstance(data.get("step"), int) else None
    trained = data.get("sd_checkpoint_name") if isinstance(data.get("sd_checkpoint_name"), str) else None
    return Hypernetwork(path, name, structure, modules, step, trained)


def hypernetwork_folder(root: str | os.PathLike | None = None) -> Path:
    """models/hypernetworks of `root` (an A1111 models folder), else of $SD1KIT_HOME/models."""
    return models_root(root) / FOLDER


def hypernetwork_files(folder: str | os.PathLike | None) -> list[Path]:
    return files_under(Path(folder) if folder else hypernetwork_folder(), SUFFIXES)


def short_hash(path: Path) -> str:
    """A1111's `Hypernetwork.shorthash`: the file's sha256, first 10 hex."""
    from sd1kit.formats.hashes import file_hashes

    return file_hashes(path).a1111_short


def find_hypernetwork(name: str, folder: str | os.PathLike | None, wanted_hash: str | None = None) -> Path:
    """The file `<hypernet:NAME>` means, among the files under `folder` only (by stem, as A1111 lists them, or a
    path relative to the folder; then by the hash a picture gives: sha256 prefix or A1111's old 8-hex model hash).
    A path elsewhere matches nothing."""
    from sd1kit.formats.hashes import hash_matches

    base = Path(folder) if folder else hypernetwork_folder()
    files = hypernetwork_files(base)
    for path in files:
        if name in (path.stem, path.name) or path.relative_to(base).with_suffix("").as_posix() == name:
            return path
    for path in files if wanted_hash else ():
        if hash_matches(path, wanted_hash):
            return path
    tag = f" [{wanted_hash}]" if wanted_hash else ""
    raise Sd1kitError("hypernetwork", f"{name!r}{tag} is not in {base}"
                      + ("" if base.is_dir() else " (no such folder; set SD1KIT_HOME or --models-dir)"))


def residual(module: torch.nn.Module, x: torch.Tensor, strength: float) -> torch.Tensor:
    """A1111's HypernetworkModule.forward in inference, computed in float32 and cast back."""
    return (x.float() + module(x.float()) * strength).to(x.dtype)


def _attentions(unet) -> list:
    return [m for m in unet.modules() if hasattr(m, "to_k") and hasattr(m, "to_v") and hasattr(m, "to_q")]


@contextmanager
def hypernetworks_applied(unet, stack: list[tuple[Hypernetwork, float]]):
    """`stack` (hypernetwork, strength), in prompt order, on every attention's key and value inputs."""
    def hook(index: int):
        def pre(module, args):
            x = args[0]
            for hn, strength in stack:
                pair = hn.modules.get(x.shape[-1])
                if pair is not None:
                    x = residual(pair[index], x, strength)
            return (x, *args[1:])
        return pre

    device = next(unet.parameters()).device
    for hn, _ in stack:
        for pair in hn.modules.values():
            for m in pair:
                m.to(device)
    handles = []
    try:
        for attn in _attentions(unet):
            handles.append(attn.to_k.register_forward_pre_hook(hook(0)))
            handles.append(attn.to_v.register_forward_pre_hook(hook(1)))
        yield
    finally:
        for h in handles:
            h.remove()
