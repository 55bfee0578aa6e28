"""Merge recipes: a small TOML graph of input files, method nodes and adapter bakes, the output node, component
sources and options. The same structure, with each input's sha256, is stored in the output's metadata.

    [models]                       # name = file (checkpoint, VAE or LoRA/LyCORIS)
    nai = "nai-full.safetensors"
    ef = "EasyFluffV11.2.safetensors"
    hll = "hll4.safetensors"

    [nodes.mix]                    # name = method node
    method = "weighted-sum"
    models = ["nai", "ef"]         # A first
    alpha = 0.3
    blocks = "GRAD_V"              # optional: a preset, or 26 numbers (BASE IN00-IN11 M00 OUT00-OUT11)

    [nodes.final]
    method = "bake"                # adapters baked into one input
    models = ["mix"]
    adapters = { hll = 1.0 }

    [output]
    model = "final"
    text_encoder = "nai"           # optional: a component taken from another node or model
    vae = "animevae"               # (a VAE file's weights replace the VAE)
    dtype = "fp16"                 # optional
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.merge.blocks import parse_blocks
from sd1kit.merge.methods import method

COMPONENTS = {"unet": "model.diffusion_model.", "text_encoder": "cond_stage_model.", "vae": "first_stage_model."}
DTYPES = ("fp16", "bf16", "fp32")


@dataclass
class Node:
    method: str  # a merge method's name, or "bake"
    models: list[str]
    params: dict = field(default_factory=dict)
    blocks: tuple[float, ...] = ()
    blocks_beta: tuple[float, ...] = ()
    adapters: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {"method": self.method, "models": list(self.models), **self.params}
        if self.blocks:
            d["blocks"] = list(self.blocks)
        if self.blocks_beta:
            d["blocks_beta"] = list(self.blocks_beta)
        if self.adapters:
            d["adapters"] = dict(self.adapters)
        return d


@dataclass
class Recipe:
    models: dict[str, Path]
    nodes: dict[str, Node]
    output: str
    components: dict[str, str] = field(default_factory=dict)
    dtype: str | None = None
    force: bool = False  # allow mixing prediction types

    def as_dict(self) -> dict:
        out = {"model": self.output, **self.components}
        if self.dtype:
            out["dtype"] = self.dtype
        if self.force:
            out["force"] = True
        return {"models": {k: str(v) for k, v in self.models.items()},
                "nodes": {k: n.as_dict() for k, n in self.nodes.items()}, "output": out}

    def inputs_of(self, name: str) -> list[str]:
        node = self.nodes.get(name)
        return [] if node is None else [*node.models, *node.adapters]


def _node(name: str, spec: dict, where: str) -> Node:
    if not isinstance(spec, dict) or "method" not in spec:
        raise Sd1kitError(where, f"node {name!r} needs a method")
    spec = dict(spec)
    kind = str(spec.pop("method"))
    models = spec.pop("models", None)
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise Sd1kitError(where, f"node {name!r}: models must be a list of names")
    blocks = parse_blocks(spec.pop("blocks", None), f"{where}: node {name!r} blocks")
    blocks_beta = parse_blocks(spec.pop("blocks_beta", None), f"{where}: node {name!r} blocks_beta")
    adapters = spec.pop("adapters", {})
    if kind == "bake":
        if len(models) != 1 or not isinstance(adapters, dict) or not adapters:
            raise Sd1kitError(where, f"node {name!r}: bake takes one model and adapters = {{ name = weight }}")
        if spec:
            raise Sd1kitError(where, f"node {name!r}: unknown keys {sorted(spec)}")
        return Node("bake", models, adapters={str(k): float(v) for k, v in adapters.items()})
    m = method(kind)
    if m.models and len(models) != m.models:
        raise Sd1kitError(where, f"node {name!r}: {m.name} takes {m.models} models, got {len(models)}")
    if not m.models and len(models) < 2:
        raise Sd1kitError(where, f"node {name!r}: {m.name} takes two or more models")
    unknown = sorted(set(spec) - set(m.params))
    if unknown:
        raise Sd1kitError(where, f"node {name!r}: {m.name} has no parameter {unknown[0]!r} "
                                 f"(it takes {', '.join(m.params) or 'none'})")
    return Node(m.name, models, {**m.params, **spec}, blocks, blocks_beta)


def recipe_from_dict(data: dict, base_dir: Path | None = None, where: str = "recipe") -> Recipe:
    base_dir = base_dir or Path(".")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise Sd1kitError(where, "a recipe needs a [models] table: name = file")
    paths = {}
    for name, value in models.items():
        path = Path(os.path.expanduser(str(value)))
        paths[name] = path if path.is_absolute() else base_dir / path
    nodes = {name: _node(name, spec, where) for name, spec in (data.get("nodes") or {}).items()}
    clash = set(paths) & set(nodes)
    if clash:
        raise Sd1kitError(where, f"{sorted(clash)[0]!r} is both a model and a node")
    output = dict(data.get("output") or {})
    target = output.pop("model", None) or (list(nodes)[-1] if nodes else None)
    if target is None:
        raise Sd1kitError(where, "[output] model = NAME is missing")
    dtype = output.pop("dtype", None)
    if dtype is not None and dtype not in DTYPES:
        raise Sd1kitError(where, f"output dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    force = bool(output.pop("force", False))
    unknown = sorted(set(output) - set(COMPONENTS))
    if unknown:
        raise Sd1kitError(where, f"[output] has no key {unknown[0]!r} (components: {', '.join(COMPONENTS)})")
    recipe = Recipe(paths, nodes, target, {k: str(v) for k, v in output.items()}, dtype, force)
    _check_graph(recipe, where)
    return recipe


def _check_graph(recipe: Recipe, where: str) -> None:
    known = set(recipe.models) | set(recipe.nodes)
    for name in [recipe.output, *recipe.components.values(), *(i for n in recipe.nodes for i in recipe.inputs_of(n))]:
        if name not in known:
            raise Sd1kitError(where, f"{name!r} is neither a model nor a node")
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 1:
            raise Sd1kitError(where, "the recipe has a cycle: " + " -> ".join(path + [name]))
        if state.get(name) == 2:
            return
        state[name] = 1
        for child in recipe.inputs_of(name):
            visit(child, path + [name])
        state[name] = 2

    for name in recipe.nodes:
        visit(name, [])


def load_recipe(path: str | os.PathLike) -> Recipe:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise Sd1kitError(path, f"cannot read the recipe ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise Sd1kitError(path, f"not valid TOML ({e})") from None
    return recipe_from_dict(data, path.parent, str(path))


def short_recipe(models: list[str], method_name: str, params: dict, blocks=None, adapters=None, vae=None,
                 components=None, dtype=None, force=False) -> Recipe:
    """`sd1kit merge A B [C] --method ... --alpha ...` as a recipe."""
    names = [chr(ord("A") + i) for i in range(len(models))]
    data: dict = {"models": dict(zip(names, models)), "nodes": {}, "output": {}}
    node = {"method": method_name, "models": names, **{k: v for k, v in params.items() if v is not None}}
    if blocks:
        node["blocks"] = blocks
    data["nodes"]["merged"] = node
    last = "merged"
    if adapters:
        for i, (path, weight) in enumerate(adapters):
            data["models"][f"adapter{i}"] = path
        data["nodes"]["baked"] = {"method": "bake", "models": [last],
                                  "adapters": {f"adapter{i}": w for i, (_, w) in enumerate(adapters)}}
        last = "baked"
    data["output"]["model"] = last
    if vae:
        data["models"]["vae_file"] = vae
        data["output"]["vae"] = "vae_file"
    for component, letter in (components or {}).items():
        data["output"][component] = letter
    if dtype:
        data["output"]["dtype"] = dtype
    if force:
        data["output"]["force"] = True
    return recipe_from_dict(data, Path("."), "merge")
