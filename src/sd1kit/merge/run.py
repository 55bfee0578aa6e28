"""Running a recipe: inputs opened lazily (safetensors read tensor by tensor; pickles loaded safely), every key
of the output computed through the graph in fp32 and written as soon as it is done, the next key's tensors read
in a second thread meanwhile. The output carries the recipe, each input's sha256, the sd1kit version and the
prediction type, and a yaml beside it when that is needed; it is written to a temporary file and renamed."""

from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_hashes
from sd1kit.formats.keys.ldm import VAE_PREFIX
from sd1kit.formats.safetensors_io import DTYPE_SIZES, TORCH_TO_ST_DTYPE, write_safetensors_stream
from sd1kit.formats.source import open_source, sidecar_yaml_path
from sd1kit.formats.yaml_config import v1_inference_yaml
from sd1kit.merge.blocks import weight_for
from sd1kit.merge.methods import method
from sd1kit.merge.recipe import COMPONENTS, Recipe

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
CHUNK = 1 << 22  # elements per slice for elementwise methods: fp32 copies of a slice, not of a whole tensor
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
RECIPE_KEY = "sd1kit_recipe"


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


@dataclass
class MergeResult:
    out: Path
    yaml: Path | None
    keys: int
    prediction: str | None
    warnings: list[str] = field(default_factory=list)


def _open_input(name: str, path: Path) -> _Input:
    from sd1kit.models.detect import detect

    source = open_source(path)
    if not source.safe:
        raise Sd1kitError(path, "unsafe pickle: references " + ", ".join(source.unsafe_globals[:3]))
    d = detect(source)
    if d.kind in ("lora", "lycoris"):
        from sd1kit.adapters.file import group_modules

        return _Input(name, path, d.kind, {}, {}, None, adapter=group_modules(source))
    if d.family not in ("sd1", "unknown"):
        raise Sd1kitError(path, f"this is {d.family}, not SD1: it cannot be merged with SD1 models")
    if d.kind == "vae":
        from sd1kit.pipeline.vae import _vae_state_dict

        sd = _vae_state_dict(path)
        return _Input(name, path, "vae", {k: tuple(v.shape) for k, v in sd.items()},
                      {k: TORCH_TO_ST_DTYPE[str(v.dtype)] for k, v in sd.items()}, sd.__getitem__)
    return _Input(name, path, d.kind, source.shapes, {k: i.dtype for k, i in source.tensors.items()},
                  source.get_tensor, d.prediction, d.zero_terminal_snr)


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
        self._check_predictions()

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

            write_safetensors_stream(self.out, entries, produce, metadata, finish=self._finish)
        yaml_out = self._write_yaml(prediction)
        return MergeResult(self.out, yaml_out, len(entries), prediction, self.warnings)

    def _read(self, key: str) -> dict:
        """The raw input tensors one key needs (read ahead in the second thread)."""
        return {(n, key): i.get(key) for n, i in self.inputs.items() if i.get is not None and key in i.shapes}

    def _finish(self) -> None:
        for stack in self._stacks.values():
            stack.stack.check_applied()


    def _metadata(self, prediction, ztsnr) -> dict[str, str]:
        record = self.recipe.as_dict()
        record["models"] = {n: {"path": str(p.resolve()), "file": p.name, "sha256": file_hashes(p).sha256}
                            for n, p in self.recipe.models.items()}
        metadata = {RECIPE_KEY: json.dumps(record), "sd1kit_version": __version__}
        if prediction:
            metadata["sd1kit.prediction"] = prediction
            metadata["sd1kit.zero_terminal_snr"] = "true" if ztsnr else "false"
        return metadata

    def _write_yaml(self, prediction) -> Path | None:
        from sd1kit.formats.atomic import atomic_path

        yaml = sidecar_yaml_path(self.first_input(self.recipe.output).path)
        if yaml is None and prediction != "v":
            return None
        target = self.out.with_suffix(".yaml")
        with atomic_path(target) as tmp:
            if yaml is not None:
                shutil.copyfile(yaml, tmp)
            else:
                tmp.write_text(v1_inference_yaml(v_prediction=True))
        return target



def merge(recipe: Recipe, out: str | os.PathLike, progress=None) -> MergeResult:
    return Merger(recipe, out).run(progress)


def recipe_from_output(path: str | os.PathLike, search: list[Path] | None = None, force: bool = False) -> Recipe:
    """The recipe an sd1kit merge stored in its output, with each input found again (recorded path, then the
    same file name beside the output or in `search` folders) and checked by sha256."""
    from sd1kit.formats.safetensors_io import read_header
    from sd1kit.merge.recipe import recipe_from_dict

    path = Path(path)
    meta = read_header(path).metadata
    if RECIPE_KEY not in meta:
        raise Sd1kitError(path, "this file does not record an sd1kit merge recipe")
    record = json.loads(meta[RECIPE_KEY])
    folders = [path.parent, *(search or [])]
    models = {}
    for name, info in record["models"].items():
        candidates = [Path(info["path"])] + [f / info["file"] for f in folders]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise Sd1kitError(info["file"], f"input {name!r} of the recorded merge is not found "
                                            f"(sha256 {info['sha256'][:12]})")
        if file_hashes(found).sha256 != info["sha256"] and not force:
            raise Sd1kitError(found, f"input {name!r} is not the file the merge used (sha256 differs)")
        models[name] = str(found.resolve())
    record["models"] = models
    return recipe_from_dict(record, where=str(path))
