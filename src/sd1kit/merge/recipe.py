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

A recipe is a downloaded file like any other, and so is the JSON copy of one in a merged file's metadata: both
are checked field by field (each wrong type is a one-line error naming the field), bounded before parsing
(MAX_RECIPE_BYTES, bracket nesting and dotted-key length in the raw text: Python's tomllib recurses on nested
arrays and slows quadratically on long dotted keys) and after (MAX_NODES nodes, MAX_DEPTH levels of nodes,
MAX_NODE_INPUTS inputs a node), and the graph is walked without recursion, cycles refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.merge.blocks import parse_blocks
from sd1kit.merge.methods import method

COMPONENTS = {"unet": "model.diffusion_model.", "text_encoder": "cond_stage_model.", "vae": "first_stage_model."}
DTYPES = ("fp16", "bf16", "fp32")
SECTIONS = ("models", "nodes", "output")
MAX_RECIPE_BYTES = 1 << 20
MAX_MODELS = 256
MAX_NODES = 256
MAX_NODE_INPUTS = 16
MAX_DEPTH = 64  # nodes over nodes; the merge computes a key through them by recursion, a few frames a level
MAX_NESTING = 32  # brackets in the raw text (a real recipe nests 2)
MAX_KEY_PARTS = 32  # parts of one dotted key in the raw text (a real recipe's longest is nodes.NAME)
MAX_NAME = 100
# method parameters with a range the method needs (the others take any finite number)
PARAM_RANGES = {"probability": (0.0, 1.0), "k": (0.0, 1.0), "seed": (0, 2**63 - 1)}

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


# --- reading: fields checked one by one, each error naming its field ---

def _kind(value) -> str:
    """A value's type in TOML's words."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
                       (list, "an array"), (dict, "a table")):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _field(*parts) -> str:
    """A field's path as TOML writes it: bare keys as they are, others quoted."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in map(str, parts))


def _table(value, name: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise Sd1kitError(where, f"{name} must be a table, not {_kind(value)}")
    return value


def _name(value, name: str, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME or not value.isprintable():
        shown = _kind(value) if not isinstance(value, str) else f"{value[:40]!r}"
        raise Sd1kitError(where, f"{name} must be a model or node name (1-{MAX_NAME} printable characters), "
                                 f"not {shown}")
    return value


def _number(value, name: str, where: str, integer: bool = False) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or not abs(value) < 2**63:  # NaN and inf fail `<` too
        raise Sd1kitError(where, f"{name} must be {'an integer' if integer else 'a finite number'}, not "
                                 f"{_kind(value) if not ok or isinstance(value, bool) else repr(value)}")
    return value


def _param(node: str, key: str, default, value, where: str):
    """A method parameter, of its default's type and in the method's range."""
    name = _field("nodes", node, key)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise Sd1kitError(where, f"{name} must be true or false, not {_kind(value)}")
        return value
    value = _number(value, name, where, integer=isinstance(default, int))
    low, high = PARAM_RANGES.get(key, (-math.inf, math.inf))
    if not low <= value <= high:
        raise Sd1kitError(where, f"{name} must be between {low} and {high}, not {value!r}")
    return value


def _blocks(value, name: str, where: str) -> tuple[float, ...]:
    """Block weights: a preset name or 25/26 numbers, as a string or an array (checked before parse_blocks)."""
    if value is None:
        return ()
    if isinstance(value, list):
        if len(value) > 26 or not all((isinstance(v, (int, float)) and not isinstance(v, bool))
                                      or (isinstance(v, str) and len(v) <= 40) for v in value):
            raise Sd1kitError(where, f"{name} must be a preset name or 25/26 numbers")
    elif not isinstance(value, str) or len(value) > 400:
        raise Sd1kitError(where, f"{name} must be a preset name or 25/26 numbers, not {_kind(value)}")
    numbers = parse_blocks(value, f"{where}: {name}")
    if not all(math.isfinite(n) for n in numbers):
        raise Sd1kitError(where, f"{name}: block weights must be finite numbers")
    return numbers


def _node_models(name: str, spec: dict, where: str) -> list[str]:
    models = spec.pop("models", None)
    if not isinstance(models, list) or not models or len(models) > MAX_NODE_INPUTS:
        raise Sd1kitError(where, f"{_field('nodes', name, 'models')} must be an array of 1-{MAX_NODE_INPUTS} "
                                 f"model or node names, not "
                                 f"{_kind(models) if not isinstance(models, list) else f'{len(models)} of them'}")
    return [_name(m, f"{_field('nodes', name, 'models')}[{i}]", where) for i, m in enumerate(models)]


def _bake_node(name: str, models: list[str], spec: dict, where: str) -> Node:
    adapters = spec.pop("adapters", None)
    if len(models) != 1 or not isinstance(adapters, dict) or not adapters or len(adapters) > MAX_NODE_INPUTS:
        raise Sd1kitError(where, f"node {name!r}: bake takes one model and adapters = {{ name = weight }}")
    if spec:
        raise Sd1kitError(where, f"node {name!r}: unknown keys {sorted(spec)}")
    weights = {_name(a, f"{_field('nodes', name, 'adapters')} key", where):
               float(_number(w, _field("nodes", name, "adapters", a), where)) for a, w in adapters.items()}
    return Node("bake", models, adapters=weights)


def _node(name: str, spec, where: str) -> Node:
    spec = dict(_table(spec, _field("nodes", name), where))
    kind = spec.pop("method", None)
    if not isinstance(kind, str):
        raise Sd1kitError(where, f"node {name!r} needs a method: {_field('nodes', name, 'method')} must be a merge "
                                 f"method's name or \"bake\", not {_kind(kind)}")
    models = _node_models(name, spec, where)
    if kind == "bake":
        return _bake_node(name, models, spec, where)
    try:
        m = method(kind[:100])
    except Sd1kitError as e:
        raise Sd1kitError(where, f"{_field('nodes', name, 'method')}: {e.message}") from None
    blocks = _blocks(spec.pop("blocks", None), _field("nodes", name, "blocks"), where)
    blocks_beta = _blocks(spec.pop("blocks_beta", None), _field("nodes", name, "blocks_beta"), where)
    if m.models and len(models) != m.models:
        raise Sd1kitError(where, f"node {name!r}: {m.name} takes {m.models} models, got {len(models)}")
    if not m.models and len(models) < 2:
        raise Sd1kitError(where, f"node {name!r}: {m.name} takes two or more models")
    unknown = sorted(set(spec) - set(m.params))
    if unknown:
        raise Sd1kitError(where, f"node {name!r}: {m.name} has no parameter {unknown[0][:40]!r} "
                                 f"(it takes {', '.join(m.params) or 'none'})")
    params = {k: _param(name, k, m.params[k], v, where) for k, v in spec.items()}
    return Node(m.name, models, {**m.params, **params}, blocks, blocks_beta)


def _models(value, base_dir: Path, where: str) -> dict[str, Path]:
    if not isinstance(value, dict) or not value:
        raise Sd1kitError(where, "a recipe needs a [models] table: name = file")
    if len(value) > MAX_MODELS:
        raise Sd1kitError(where, f"[models] lists {len(value)} files; a recipe takes at most {MAX_MODELS}")
    paths = {}
    for name, file in value.items():
        _name(name, "a [models] key", where)
        if not isinstance(file, str) or not file or "\0" in file or len(file) > 4096:
            raise Sd1kitError(where, f"{_field('models', name)} must be a file path (a string), not "
                                     f"{_kind(file) if not isinstance(file, str) else repr(file[:40])}")
        path = Path(os.path.expanduser(file))
        paths[name] = path if path.is_absolute() else base_dir / path
    return paths


def _nodes(value, where: str) -> dict[str, Node]:
    nodes = _table({} if value is None else value, "[nodes]", where)
    if len(nodes) > MAX_NODES:
        raise Sd1kitError(where, f"the recipe has {len(nodes)} nodes; a recipe has at most {MAX_NODES}")
    return {_name(name, "a [nodes] key", where): _node(name, spec, where) for name, spec in nodes.items()}


def _output(value, nodes: dict, where: str) -> tuple[str, dict[str, str], str | None, bool]:
    """[output]: (model, components, dtype, force)."""
    output = dict(_table({} if value is None else value, "[output]", where))
    target = output.pop("model", None)
    if target is None and not nodes:
        raise Sd1kitError(where, "[output] model = NAME is missing")
    target = list(nodes)[-1] if target is None else _name(target, "output.model", where)
    dtype = output.pop("dtype", None)
    if dtype is not None and dtype not in DTYPES:
        raise Sd1kitError(where, f"output.dtype must be one of {', '.join(DTYPES)}, not "
                                 f"{repr(dtype[:40]) if isinstance(dtype, str) else _kind(dtype)}")
    force = output.pop("force", False)
    if not isinstance(force, bool):
        raise Sd1kitError(where, f"output.force must be true or false, not {_kind(force)}")
    unknown = sorted(set(output) - set(COMPONENTS))
    if unknown:
        raise Sd1kitError(where, f"[output] has no key {unknown[0][:40]!r} (components: {', '.join(COMPONENTS)})")
    return target, {k: _name(v, _field("output", k), where) for k, v in output.items()}, dtype, force


def recipe_from_dict(data, base_dir: Path | None = None, where: str = "recipe") -> Recipe:
    """A recipe from its parsed TOML (or the JSON record of a merged file), every field checked."""
    data = _table(data, "the recipe", where)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise Sd1kitError(where, f"a recipe has no {unknown[0][:40]!r} (it has [models], [nodes.NAME] and [output])")
    paths = _models(data.get("models"), base_dir or Path("."), where)
    nodes = _nodes(data.get("nodes"), where)
    clash = set(paths) & set(nodes)
    if clash:
        raise Sd1kitError(where, f"{sorted(clash)[0]!r} is both a model and a node")
    target, components, dtype, force = _output(data.get("output"), nodes, where)
    recipe = Recipe(paths, nodes, target, components, dtype, force)
    _check_graph(recipe, where)
    return recipe


def _check_graph(recipe: Recipe, where: str) -> None:
    """Every name known; no cycle; nodes nested at most MAX_DEPTH deep. Depth-first, with its own stack."""
    known = set(recipe.models) | set(recipe.nodes)
    refs = [("output.model", recipe.output), *((_field("output", c), n) for c, n in recipe.components.items()),
            *((_field("nodes", n), i) for n in recipe.nodes for i in recipe.inputs_of(n))]
    for name, ref in refs:
        if ref not in known:
            raise Sd1kitError(where, f"{name}: {ref!r} is neither a model nor a node")
    depth: dict[str, int] = {}  # finished nodes: how many levels of nodes they stand on, themselves included
    for root in recipe.nodes:
        path, children = [root], [iter(recipe.inputs_of(root))]
        while path and root not in depth:
            child = next(children[-1], None)
            if child is None:
                done = path.pop()
                children.pop()
                depth[done] = 1 + max((depth.get(c, 0) for c in recipe.inputs_of(done)), default=0)
                if depth[done] > MAX_DEPTH:
                    raise Sd1kitError(where, f"{_field('nodes', done)}: nodes nest {depth[done]} levels deep here; "
                                             f"a recipe nests at most {MAX_DEPTH}")
            elif child in path:
                cycle = path[path.index(child):] + [child]
                shown = cycle if len(cycle) <= 8 else [*cycle[:4], "...", *cycle[-3:]]
                raise Sd1kitError(where, "the recipe has a cycle: " + " -> ".join(shown))
            elif child in recipe.nodes and child not in depth:
                path.append(child)
                children.append(iter(recipe.inputs_of(child)))


# --- the raw text, bounded before a parser sees it ---

_TOML_SKIP = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')
_JSON_SKIP = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
_LONG_DOTTED = re.compile(r"(?<![\w-])(?:[\w-]+\s*\.\s*){%d}" % MAX_KEY_PARTS)


def check_raw_text(text: str, where: str, json_text: bool = False) -> None:
    """Refuse text nested deeper than MAX_NESTING brackets, or (TOML) with a dotted key of MAX_KEY_PARTS parts,
    strings and comments left out of the count. Linear in the text; approximate only where it errs on refusing."""
    if len(text) > MAX_RECIPE_BYTES:
        raise Sd1kitError(where, f"the recipe is larger than {MAX_RECIPE_BYTES >> 20} MiB")
    bare = (_JSON_SKIP if json_text else _TOML_SKIP).sub("s", text)
    depth = 0
    for bracket in _BRACKETS.finditer(bare):
        depth = depth + 1 if bracket.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_NESTING:
            raise Sd1kitError(where, f"the recipe nests arrays/tables deeper than {MAX_NESTING} levels")
    if not json_text and _LONG_DOTTED.search(bare):
        raise Sd1kitError(where, f"the recipe has a dotted key of {MAX_KEY_PARTS} or more parts")


def parse_recipe_json(text: str, where: str) -> dict:
    """The JSON recipe a merged file records (untrusted like the file): bounded, parsed, a table."""
    check_raw_text(text, where, json_text=True)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Sd1kitError(where, f"the recorded merge recipe is not valid JSON ({str(e)[:80]})") from None
    return _table(data, "the recorded merge recipe", where)


def load_recipe(path: str | os.PathLike) -> Recipe:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RECIPE_BYTES + 1)
    except OSError as e:
        raise Sd1kitError(path, f"cannot read the recipe ({e.strerror or e})") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise Sd1kitError(path, f"the recipe is larger than {MAX_RECIPE_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Sd1kitError(path, f"not valid TOML (not UTF-8 at byte {e.start})") from None
    check_raw_text(text, str(path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Sd1kitError(path, f"not valid TOML ({e})") from None
    except RecursionError:
        raise Sd1kitError(path, "not valid TOML (nested too deeply)") from None
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
