"""Running a recipe: inputs opened lazily (safetensors read tensor by tensor; pickles loaded safely), every key
of the output computed through the graph in fp32 and written as soon as it is done, the next key's tensors read
in a second thread meanwhile. The output carries the recipe, each input's sha256, the sd1kit version and the
prediction type, and sd1kit's own yaml beside it when that is needed (never a copy of an input's); it is written
to a temporary file and renamed.

Inputs are untrusted: each must be what the recipe uses it as (an SD1 checkpoint, UNet, VAE or text encoder as
weights, a LoRA/LyCORIS only in a bake node), its yaml must pass formats.yaml_config, and a file that changes on
disk between being opened and the output taking its name (device, inode, size, mtime, ctime) fails the merge, so
the sha256 recorded is of the bytes the merge read."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_hashes
from sd1kit.formats.safetensors_io import DTYPE_SIZES, TORCH_TO_ST_DTYPE, write_safetensors_stream
from sd1kit.formats.source import open_source
from sd1kit.formats.yaml_config import in_channels_of, write_output_yaml
from sd1kit.merge.blocks import weight_for
from sd1kit.merge.methods import method
from sd1kit.merge.recipe import COMPONENTS, Recipe

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
CHUNK = 1 << 22  # elements per slice for elementwise methods: fp32 copies of a slice, not of a whole tensor
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
RECIPE_KEY = "sd1kit_recipe"
MODEL_KINDS = ("checkpoint", "unet", "vae", "text_encoder")
ADAPTER_KINDS = ("lora", "lycoris")
COMPONENT_KINDS = {"unet": ("checkpoint", "unet"), "text_encoder": ("checkpoint", "text_encoder"),
                   "vae": ("checkpoint", "vae")}


@dataclass
class _Input:
    name: str
    path: Path
    kind: str  # checkpoint | unet | vae | text_encoder | lora | lycoris
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    get: object  # key -> tensor
    prediction: str | None = None
    zero_terminal_snr: bool = False
    adapter: object = None  # AdapterFile for lora / lycoris inputs
    stamps: dict = field(default_factory=dict)  # file -> _identity(file) when opened
    yaml: Path | None = None  # the (checked) yaml beside a checkpoint input


@dataclass
class MergeResult:
    out: Path
    yaml: Path | None
    keys: int
    prediction: str | None
    warnings: list[str] = field(default_factory=list)


def _open_input(name: str, path: Path) -> _Input:
    """Open one recipe input by its header, refusing what is not an SD1 model, VAE, text encoder or adapter.
    The file's identity is taken before anything of it is read (see Merger.check_unchanged)."""
    from sd1kit.models.detect import detect

    stamps = {path: _identity(path)} if path.is_file() else {}
    source = open_source(path)
    stamps.update({f: _identity(f) for f in source.files if f not in stamps})
    if not source.safe:
        raise Sd1kitError(path, "unsafe pickle: references " + ", ".join(source.unsafe_globals[:3]))
    d = detect(source)  # also reads and checks the yaml beside a checkpoint: one sd1kit refuses stops the merge
    if d.kind in ADAPTER_KINDS:
        from sd1kit.adapters.file import group_modules

        return _Input(name, path, d.kind, {}, {}, None, adapter=group_modules(source), stamps=stamps)
    _check_model(path, d)
    if d.kind == "vae":
        from sd1kit.pipeline.vae import _vae_state_dict

        sd = _vae_state_dict(path)
        return _Input(name, path, "vae", {k: tuple(v.shape) for k, v in sd.items()},
                      {k: TORCH_TO_ST_DTYPE[str(v.dtype)] for k, v in sd.items()}, sd.__getitem__, stamps=stamps)
    return _Input(name, path, d.kind, source.shapes, {k: i.dtype for k, i in source.tensors.items()},
                  source.get_tensor, d.prediction, d.zero_terminal_snr, stamps=stamps,
                  yaml=d.yaml.path if d.yaml else None)


def _check_model(path: Path, d) -> None:
    """An input merged as weights must be an SD1 checkpoint, UNet, VAE or text encoder whose shapes fit SD1."""
    if d.family not in ("sd1", "unknown"):
        raise Sd1kitError(path, f"this is {d.family}, not SD1: it cannot be merged with SD1 models")
    if d.kind not in MODEL_KINDS or d.family != "sd1":
        raise Sd1kitError(path, f"holds no SD1 model weights (detected: {d.kind}): merge takes SD1 checkpoints, "
                                "UNets, VAEs and text encoders, and LoRA/LyCORIS files in bake nodes")
    if d.problems:
        raise Sd1kitError(path, f"does not fit an SD1 model: {d.problems[0]}")


def _identity(path: Path) -> tuple:
    """What tells a file apart from a changed or replaced one: device, inode, size, mtime and ctime (ctime moves on
    every write, and no tool can set it back the way `touch`/`rsync -t` set mtime)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class Merger:
    def __init__(self, recipe: Recipe, out: str | os.PathLike):
        self.recipe, self.out = recipe, Path(out)
        self.warnings: list[str] = []
        for name, path in recipe.models.items():
            if not path.exists():
                raise Sd1kitError(path, f"input {name!r} does not exist")
            if self.out.exists() and os.path.samefile(path, self.out):
                raise Sd1kitError(self.out, "the output would replace an input; choose another --out")
        self.inputs = {name: _open_input(name, path) for name, path in recipe.models.items()}
        self._keys: dict[str, list[str]] = {}
        self._stacks: dict[str, object] = {}
        self._check_roles()
        self._check_predictions()

    def _check_roles(self) -> None:
        """LoRA/LyCORIS inputs only as a bake node's adapters, everything else only as weights; a component taken
        from a file only from one that holds that component."""
        adapters = {a for node in self.recipe.nodes.values() for a in node.adapters}
        for name, item in self.inputs.items():
            if name in adapters and item.adapter is None:
                raise Sd1kitError(item.path, f"{name!r} is baked as an adapter but is a {item.kind}, "
                                             "not a LoRA/LyCORIS")
            if name not in adapters and item.adapter is not None:
                raise Sd1kitError(item.path, f"{name!r} is a LoRA/LyCORIS file: use it in a bake node "
                                             f"(adapters = {{ {name} = 1.0 }}, or --bake)")
        for component, source in self.recipe.components.items():
            item = self.inputs.get(source)
            if item is not None and item.kind not in COMPONENT_KINDS[component]:
                raise Sd1kitError(item.path, f"{source!r} is a {item.kind} file: it holds no "
                                             f"{component.replace('_', ' ')} to take")

    def check_unchanged(self) -> None:
        """Refuse when an input file changed or was replaced since it was opened: the tensors read, and the sha256
        recorded, would not be of one file."""
        for item in self.inputs.values():
            for path, stamp in item.stamps.items():
                try:
                    now = _identity(path)
                except OSError:
                    now = None
                if now != stamp:
                    raise Sd1kitError(path, f"input {item.name!r} changed on disk during the merge; nothing was "
                                            "written (merge again once the file is complete)")

    # --- structure: which keys each node has, and where each output key comes from ---
    def first_input(self, name: str) -> _Input:
        """The file a node's keys, shapes, dtypes and prediction come from: its first model, followed down."""
        while name not in self.inputs:
            name = self.recipe.nodes[name].models[0]
        return self.inputs[name]

    def keys(self, name: str) -> list[str]:
        if name not in self._keys:
            item = self.first_input(name)
            if item.adapter is not None:
                raise Sd1kitError(item.path, f"{item.name!r} is a LoRA/LyCORIS file: use it in a bake node")
            self._keys[name] = list(item.shapes)
        return self._keys[name]

    def shape(self, name: str, key: str) -> tuple[int, ...] | None:
        return self.first_input(name).shapes.get(key)

    def output_plan(self) -> list[tuple[str, str]]:
        """(key, node it comes from) for every output key, component overrides applied."""
        plan = {k: self.recipe.output for k in self.keys(self.recipe.output)}
        for component, source in self.recipe.components.items():
            prefix = COMPONENTS[component]
            plan = {k: n for k, n in plan.items() if not k.startswith(prefix)}
            taken = [k for k in self.keys(source) if k.startswith(prefix)]
            if not taken:
                raise Sd1kitError(self.inputs[source].path if source in self.inputs else source,
                                  f"has no {component.replace('_', ' ')} to take")
            plan.update({k: source for k in taken})
        return list(plan.items())

    def check_shapes(self, plan: list[tuple[str, str]]) -> None:
        """Every method input must have each key in the first input's shape (conv_in may differ in channels)."""
        for node_name, node in self.recipe.nodes.items():
            if node.method == "bake":
                continue
            first = node.models[0]
            for key in self.keys(first):
                want = self.shape(first, key)
                for other in node.models[1:]:
                    got = self.shape(other, key)
                    if got is None or got == want:
                        continue
                    if key == CONV_IN and got[0] == want[0] and got[2:] == want[2:]:
                        if got[1] > want[1]:
                            raise Sd1kitError(key, f"node {node_name!r}: the model with more input channels "
                                                   f"({other}, {got[1]}) must come first, as A1111 requires")
                        continue
                    raise Sd1kitError(key, f"node {node_name!r}: {other} has shape {list(got)}, {first} has "
                                           f"{list(want)}: the models do not fit together")

    def _check_predictions(self) -> None:
        seen = {(i.prediction, i.zero_terminal_snr): n for n, i in self.inputs.items() if i.kind in ("checkpoint", "unet")}
        if len(seen) > 1 and not self.recipe.force:
            detail = "; ".join(f"{n}: {p}{' + ZTSNR' if z else ''}" for (p, z), n in seen.items())
            raise Sd1kitError("merge", f"the inputs disagree on prediction type ({detail}); a merge of them is "
                                       "rarely what was meant (force = true / --force to merge anyway)")

    def output_prediction(self) -> tuple[str | None, bool]:
        item = self.first_input(self.recipe.output)
        return item.prediction, item.zero_terminal_snr

    # --- values ---
    def _stack(self, name: str):
        if name not in self._stacks:
            from sd1kit.adapters.bake import PatchedTensors
            from sd1kit.adapters.stack import ActiveAdapter, AdapterStack

            node = self.recipe.nodes[name]
            base = node.models[0]
            shapes = {k: self.shape(base, k) for k in self.keys(base)}
            active = []
            for adapter_name, weight in node.adapters.items():
                item = self.inputs[adapter_name]
                if item.adapter is None:
                    raise Sd1kitError(item.path, f"{adapter_name!r} is not a LoRA/LyCORIS file")
                active.append(ActiveAdapter(item.adapter, adapter_name, weight, weight))
            stack = AdapterStack(active, shapes)
            stack.check_matched(repr(base))
            keys = set(self.keys(base))
            self._stacks[name] = PatchedTensors(lambda k: self.value(base, k), keys.__contains__, stack)
        return self._stacks[name]

    def value(self, name: str, key: str) -> torch.Tensor | None:
        cache = self._cache
        if (name, key) in cache:
            return cache[(name, key)]
        if name in self.inputs:
            item = self.inputs[name]
            result = self._prefetched.get((name, key))
            if result is None and key in item.shapes:
                result = item.get(key)
        else:
            node = self.recipe.nodes[name]
            if node.method == "bake":
                result = self._stack(name).get(key) if key in self.keys(node.models[0]) else None
            else:
                result = self._apply(node, key)
        cache[(name, key)] = result
        return result

    def _apply(self, node, key: str) -> torch.Tensor | None:
        values = [self.value(m, key) for m in node.models]
        a = values[0]
        if a is None or any(v is None for v in values[1:]) or not a.is_floating_point():
            return a  # keys other inputs lack are A's, as in A1111
        m = method(node.method)
        params = dict(node.params)
        if "alpha" in params:
            params["alpha"] = weight_for(key, node.blocks, float(params["alpha"]))
        if "beta" in params and node.blocks_beta:
            params["beta"] = weight_for(key, node.blocks_beta, float(params["beta"]))
        if key == CONV_IN and any(v.shape[1] != a.shape[1] for v in values[1:]):
            narrow = min(v.shape[1] for v in values)  # inpainting / instruct-pix2pix A: merge its first channels
            merged = a.clone()
            merged[:, :narrow] = m.function(*[v[:, :narrow].float() for v in values], **params).to(a.dtype)
            return merged
        if m.elementwise and a.numel() > CHUNK and all(v.is_contiguous() for v in values):
            flat = [v.reshape(-1) for v in values]
            out = torch.empty_like(flat[0])
            for start in range(0, out.numel(), CHUNK):
                part = [f[start:start + CHUNK].float() for f in flat]
                out[start:start + CHUNK] = m.function(*part, **params).to(a.dtype)
            return out.reshape(a.shape)
        return m.function(*[v.float() for v in values], **params).to(a.dtype)

    # --- the run ---
    def run(self, progress=None) -> MergeResult:
        plan = self.output_plan()
        self.check_shapes(plan)
        cast = DTYPES[self.recipe.dtype] if self.recipe.dtype else None
        where = {k: n for k, n in plan}
        entries = []
        for key, node in plan:
            dtype = self.first_input(node).dtypes[key]
            if cast is not None and dtype in ("F16", "BF16", "F32", "F64"):
                dtype = TORCH_TO_ST_DTYPE[str(cast)]
            entries.append((key, dtype, self.shape(node, key)))
        needed = sum(DTYPE_SIZES[d] * math.prod(s) for _, d, s in entries)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.out.parent, os.W_OK):  # a read-only folder is not a full one
            raise Sd1kitError(self.out.parent, "read-only folder: cannot write the merge here")
        free = shutil.disk_usage(self.out.parent).free
        if free < needed + (64 << 20):
            raise Sd1kitError(self.out.parent, f"not enough free space: the merge needs {needed / 1e9:.2f} GB, "
                                               f"{free / 1e9:.2f} GB are free")
        prediction, ztsnr = self.output_prediction()
        metadata = self._metadata(prediction, ztsnr)
        keys = [k for k, _, _ in entries]
        self._cache, self._prefetched = {}, {}
        index = {k: i for i, k in enumerate(keys)}
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = {0: pool.submit(self._read, keys[0])} if keys else {}

            def produce(key: str) -> torch.Tensor:
                i = index[key]
                self._prefetched = pending.pop(i).result()
                if i + 1 < len(keys):
                    pending[i + 1] = pool.submit(self._read, keys[i + 1])
                self._cache = {}
                tensor = self.value(where[key], key)
                if cast is not None and tensor.is_floating_point():
                    tensor = tensor.to(cast)
                if progress is not None:
                    progress(i + 1, len(keys))
                return tensor

            try:
                write_safetensors_stream(self.out, entries, produce, metadata, finish=self._finish)
            except Sd1kitError:
                self.check_unchanged()  # a read that failed because an input was replaced says so
                raise
        yaml_out = self._write_yaml(prediction, in_channels_of({k: s for k, _, s in entries}))
        return MergeResult(self.out, yaml_out, len(entries), prediction, self.warnings)

    def _read(self, key: str) -> dict:
        """The raw input tensors one key needs (read ahead in the second thread)."""
        return {(n, key): i.get(key) for n, i in self.inputs.items() if i.get is not None and key in i.shapes}

    def _finish(self) -> None:
        """Last checks before the output takes its name: every adapter module applied, no input changed."""
        for stack in self._stacks.values():
            stack.stack.check_applied()
        self.check_unchanged()


    def _metadata(self, prediction, ztsnr) -> dict[str, str]:
        record = self.recipe.as_dict()
        record["models"] = {n: {"path": str(p.resolve()), "file": p.name, "sha256": file_hashes(p).sha256}
                            for n, p in self.recipe.models.items()}
        metadata = {RECIPE_KEY: json.dumps(record), "sd1kit_version": __version__}
        if prediction:
            metadata["sd1kit.prediction"] = prediction
            metadata["sd1kit.zero_terminal_snr"] = "true" if ztsnr else "false"
        return metadata

    def _write_yaml(self, prediction, in_channels) -> Path | None:
        """sd1kit's own yaml beside the output where it needs one (formats.yaml_config.write_output_yaml)."""
        return write_output_yaml(self.out, prediction, in_channels, self.first_input(self.recipe.output).yaml)


def merge(recipe: Recipe, out: str | os.PathLike, progress=None) -> MergeResult:
    return Merger(recipe, out).run(progress)


def recipe_from_output(path: str | os.PathLike, search: list[Path] | None = None, force: bool = False) -> Recipe:
    """The recipe an sd1kit merge stored in its output, with each input found again (recorded path, then the
    same file name beside the output or in `search` folders) and checked by sha256. The record is as untrusted as
    the file: it is checked as a recipe file is (merge.recipe), and each input's entry for its types."""
    from sd1kit.formats.safetensors_io import read_header
    from sd1kit.merge.recipe import parse_recipe_json, recipe_from_dict

    path = Path(path)
    meta = read_header(path).metadata
    if RECIPE_KEY not in meta:
        raise Sd1kitError(path, "this file does not record an sd1kit merge recipe")
    record = parse_recipe_json(meta[RECIPE_KEY], str(path))
    recorded = record.get("models")
    if not isinstance(recorded, dict) or not recorded:
        raise Sd1kitError(path, "the recorded merge recipe has no models table")
    entries = {name: _recorded_input(path, name, info) for name, info in recorded.items()}
    recipe_from_dict({**record, "models": {n: e[0] for n, e in entries.items()}}, where=str(path))  # before hashing
    folders = [path.parent, *(search or [])]
    models = {name: _find_again(name, *entry, folders, force) for name, entry in entries.items()}
    return recipe_from_dict({**record, "models": models}, where=str(path))


def _recorded_input(merged: Path, name: str, info) -> tuple[str, str, str]:
    """(path, file name, sha256) of one recorded input, each of its type; a plain file name only."""
    fields = info if isinstance(info, dict) else {}
    path, file, sha = fields.get("path"), fields.get("file"), fields.get("sha256")
    ok_path = isinstance(path, str) and 0 < len(path) <= 4096 and "\0" not in path
    ok_file = isinstance(file, str) and file == Path(file).name and file not in ("", ".", "..") and "\0" not in file
    if not (ok_path and ok_file and isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise Sd1kitError(merged, f"the recorded merge recipe's models.{name[:40]} is not "
                                  "{ path, file, sha256 } of a file")
    return path, file, sha


def _find_again(name: str, path: str, file: str, sha: str, folders: list[Path], force: bool) -> str:
    """A recorded input found again (its path, else its file name in `folders`), checked by sha256."""
    candidates = [Path(path)] + [f / file for f in folders]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise Sd1kitError(file, f"input {name!r} of the recorded merge is not found (sha256 {sha[:12]})")
    try:
        same = force or file_hashes(found).sha256 == sha
    except OSError as e:
        raise Sd1kitError(found, f"input {name!r} of the recorded merge cannot be read ({e.strerror or e})") from None
    if not same:
        raise Sd1kitError(found, f"input {name!r} is not the file the merge used (sha256 differs)")
    return str(found.resolve())
