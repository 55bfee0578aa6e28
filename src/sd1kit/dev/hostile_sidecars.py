"""Hostile sidecars and merge inputs: a yaml beside a valid checkpoint that would arm A1111 (`target:` a function,
hydra's `_target_`) or take the reader (aliases that expand, nesting that recurses, sizes past any config), merge
recipes that recurse, loop or mistype their fields (as TOML files and as the JSON record a merged file carries),
and merges of files that hold no SD1 model. Cases for sd1kit.dev.hostile (see its docstring).

Every case ends in a one-line refusal (exit 2) that names the file: the yaml for a yaml case, the recipe or the
merged file for a recipe case, the input for a merge-input case (`named(case, values)` says which).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sd1kit.dev.hostile import MODEL_COMMANDS, HostileCase

RECIPE = ("merge", "--recipe", "{file}", "--out", "{dir}/out/m.safetensors", "--quiet")
RECIPE_FROM = ("merge", "--recipe-from", "{file}", "--out", "{dir}/out/m.safetensors", "--quiet")
MERGE_AS_B = ("merge", "{model}", "{file}", "--alpha", "0.5", "--out", "{dir}/out/merged.safetensors", "--quiet")
MERGE_FILE_TWICE = ("merge", "{file}", "{file}", "--alpha", "0.5", "--out", "{dir}/out/merged.safetensors", "--quiet")
BAKE_IN_MERGE = ("merge", "{model}", "{model}", "--bake", "{file}", "--out", "{dir}/out/merged.safetensors",
                 "--quiet")
DEEP = 100_000


def named(case: HostileCase, values: dict[str, str]) -> str:
    """The path the one-line refusal must name: the yaml beside {file} for yaml cases, else {file}."""
    return str(Path(values["file"]).with_suffix(".yaml")) if case.kind == "yaml" else values["file"]


# --- yaml beside a valid tiny checkpoint ---

def _yaml_case(name: str, text: str | bytes, expect: str, note: str = "") -> HostileCase:
    def build(folder: Path) -> Path:
        model = folder / "models" / "tiny.safetensors"
        data = text.encode("utf-8") if isinstance(text, str) else text
        model.with_suffix(".yaml").write_bytes(data)
        return model

    return HostileCase(f"yaml-{name}", "yaml", build, MODEL_COMMANDS, expect, needs_model=True, note=note)


def _v1(old: str = "", new: str = "") -> str:
    from sd1kit.formats.yaml_config import v1_inference_yaml

    text = v1_inference_yaml()
    assert old in text
    return text.replace(old, new, 1)


def _laughs(levels: int = 10, width: int = 9) -> str:
    """Billion laughs: each level an array of `width` aliases of the one before, width**levels leaves in all."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\nmodel:\n  params:\n    p: *l9\n"


YAML_CASES = [
    _yaml_case("target-subprocess", _v1("target: ldm.models.diffusion.ddpm.LatentDiffusion",
                                        "target: subprocess.call"),
               "model.target: 'subprocess.call' is not an sd1 class", "A1111 would call subprocess.call(**params)"),
    _yaml_case("unet-target-os-system", _v1("target: ldm.modules.diffusionmodules.openaimodel.UNetModel",
                                            "target: os.system"),
               "model.params.unet_config.target: 'os.system' is not an sd1 class"),
    _yaml_case("hydra-target", _v1("    cond_stage_config:\n", "    hook:\n      _target_: os.system\n"
                                   "      command: touch pwned\n    cond_stage_config:\n"),
               "model.params.hook._target_", "hydra.utils.instantiate would run os.system"),
    _yaml_case("lightning-class-path", _v1("    cond_stage_config:\n", "    hook:\n      class_path: os.system\n"
                                           "    cond_stage_config:\n"), "class_path"),
    _yaml_case("target-not-a-string", _v1("target: torch.nn.Identity", "target: [os.system]"),
               "lossconfig.target: ['os.system'] is not an sd1 class"),
    _yaml_case("python-tag", "model: !!python/object/apply:os.system ['touch pwned']\n", "not a plain-data yaml"),
    _yaml_case("self-reference", "a: &a [*a]\nmodel:\n  params: {}\n", "anchors/aliases"),
    _yaml_case("billion-laughs", _laughs(), "anchors/aliases", "9**10 leaves from 1 KB"),
    _yaml_case("deep-flow-sequence", "[" * DEEP + "]" * DEEP, "nested deeper than 64 levels"),
    _yaml_case("deep-flow-mapping", "{a: " * DEEP + "1" + "}" * DEEP, "nested deeper than 64 levels"),
    _yaml_case("deep-block-mapping", "".join(" " * i + "a:\n" for i in range(1400)), "nested deeper than 64 levels"),
    _yaml_case("over-1-mib", "model:\n  params:\n    x: '" + "x" * (1 << 20) + "'\n", "larger than 1 mib"),
    _yaml_case("many-nodes", "model:\n  params:\n" + "".join(f"    k{i}: [1, 2, 3]\n" for i in range(30_000)),
               "more than 20000 nodes"),
    _yaml_case("int-of-5000-digits", "model:\n  params:\n    x: " + "9" * 5000 + "\n", "not a plain-data yaml"),
    _yaml_case("not-utf8", b"model:\n  params:\n    x: \xff\xfe\n", "not utf-8"),
]


# --- recipe files ---

def _toml_value(value) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays are TOML too


def _recipe_text(nodes: dict[str, dict], output: dict | None = None, models: dict | None = None) -> str:
    models = {"a": "models/tiny.safetensors"} if models is None else models
    lines = ["[models]", *(f"{k} = {_toml_value(v)}" for k, v in models.items())]
    for name, spec in nodes.items():
        lines += ["", f"[nodes.{name}]", *(f"{k} = {_toml_value(v)}" for k, v in spec.items())]
    lines += ["", "[output]", *(f"{k} = {_toml_value(v)}" for k, v in (output or {}).items())]
    return "\n".join(lines) + "\n"


def _recipe_case(name: str, text: str, expect: str, note: str = "") -> HostileCase:
    def build(folder: Path) -> Path:
        path = folder / "recipe.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return HostileCase(f"recipe-{name}", "recipe", build, (RECIPE,), expect, needs_model=True, note=note)


def _chain(n: int) -> dict[str, dict]:
    """n weighted-sum nodes, each over the one before and model a."""
    return {f"n{i}": {"method": "weighted-sum", "models": [f"n{i - 1}" if i else "a", "a"]} for i in range(n)}


MIX = {"method": "weighted-sum", "models": ["a", "a"]}
RECIPE_CASES = [
    _recipe_case("3000-nodes", _recipe_text(_chain(3000)), "3000 nodes", "recursed once per node"),
    _recipe_case("100-deep", _recipe_text(_chain(100)), "levels deep"),
    _recipe_case("cycle", _recipe_text({"x": {"method": "weighted-sum", "models": ["a", "y"]},
                                        "y": {"method": "weighted-sum", "models": ["x", "a"]}}, {"model": "x"}),
                 "cycle: x -> y -> x"),
    _recipe_case("self-loop", _recipe_text({"x": {"method": "weighted-sum", "models": ["x", "a"]}}), "cycle"),
    _recipe_case("output-model-array", _recipe_text({"mix": MIX}, {"model": ["a"]}),
                 "output.model must be a model or node name", "was an internal error"),
    _recipe_case("node-models-string", _recipe_text({"mix": {"method": "weighted-sum", "models": "a"}}),
                 "nodes.mix.models must be an array"),
    _recipe_case("node-model-number", _recipe_text({"mix": {"method": "weighted-sum", "models": ["a", 1]}}),
                 "nodes.mix.models[1] must be a model or node name"),
    _recipe_case("method-table", _recipe_text({"mix": {"method": ["weighted-sum"], "models": ["a", "a"]}}),
                 "nodes.mix.method must be"),
    _recipe_case("alpha-string", _recipe_text({"mix": {**MIX, "alpha": "half"}}), "nodes.mix.alpha must be"),
    _recipe_case("alpha-nan", _recipe_text({"mix": MIX}).replace('"a"]\n', '"a"]\nalpha = nan\n', 1),
                 "nodes.mix.alpha must be a finite number"),
    _recipe_case("seed-negative", _recipe_text({"mix": {"method": "dare", "models": ["a", "a"], "seed": -1}}),
                 "nodes.mix.seed must be between"),
    _recipe_case("blocks-table", _recipe_text({"mix": MIX}).replace('"a"]\n', '"a"]\nblocks = { x = 1 }\n', 1),
                 "nodes.mix.blocks must be"),
    _recipe_case("adapter-weight-array", _recipe_text({"mix": {"method": "bake", "models": ["a"]}}).replace(
        '["a"]\n', '["a"]\nadapters = { a = [1] }\n', 1), "nodes.mix.adapters.a must be a finite number"),
    _recipe_case("model-path-number", _recipe_text({"mix": MIX}, models={"a": 5}), "models.a must be a file path"),
    _recipe_case("dtype-number", _recipe_text({"mix": MIX}, {"dtype": 16}), "output.dtype must be one of"),
    _recipe_case("force-string", _recipe_text({"mix": MIX}, {"force": "yes"}), "output.force must be true or false"),
    _recipe_case("nodes-array", "nodes = [1]\n[models]\na = 'models/tiny.safetensors'\n", "[nodes] must be a table"),
    _recipe_case("unknown-section", _recipe_text({"mix": MIX}) + "[node.mix]\nmethod = 'ws'\n", "has no 'node'"),
    _recipe_case("deep-array", "[models]\na = 'models/tiny.safetensors'\n[nodes.mix]\nalpha = "
                 + "[" * DEEP + "]" * DEEP + "\n", "deeper than 32 levels", "tomllib recurses per level"),
    _recipe_case("deep-inline-table", "[models]\na = 'models/tiny.safetensors'\n[nodes.mix]\nalpha = "
                 + "{ b = " * DEEP + "1" + " }" * DEEP + "\n", "deeper than 32 levels"),
    _recipe_case("long-dotted-key", "[models]\na = 'models/tiny.safetensors'\n[nodes.mix]\n"
                 + ".".join(["k"] * DEEP) + " = 1\n", "dotted key", "tomllib slows quadratically on these"),
    _recipe_case("over-1-mib", "# " + "x" * (1 << 20) + "\n", "larger than 1 mib"),
    _recipe_case("not-toml", "[models\n", "not valid toml"),
]


# --- the JSON recipe a merged file records ---

def _recorded_case(name: str, record, expect: str) -> HostileCase:
    def build(folder: Path) -> Path:
        import torch
        from safetensors.torch import save_file

        path = folder / "merged.safetensors"
        model = folder / "models" / "tiny.safetensors"
        text = record if isinstance(record, str) else json.dumps(_with_input(record, model))
        save_file({"x": torch.zeros(1)}, str(path), metadata={"sd1kit_recipe": text})
        return path

    return HostileCase(f"recorded-{name}", "recorded-recipe", build, (RECIPE_FROM,), expect, needs_model=True)


def _with_input(record: dict, model: Path) -> dict:
    """The record's `models`, where it has "INPUT", as the entry of the valid tiny model."""
    if record.get("models") != "INPUT":
        return record
    entry = {"path": str(model), "file": model.name, "sha256": "0" * 64}
    return {**record, "models": {"a": entry}}


RECORDED_CASES = [
    _recorded_case("deep-json", "[" * DEEP + "]" * DEEP, "deeper than 32 levels"),
    _recorded_case("not-json", "{models:", "not valid json"),
    _recorded_case("array", "[1, 2]", "recorded merge recipe must be a table"),
    _recorded_case("models-array", {"models": ["a"], "nodes": {}, "output": {"model": "a"}}, "has no models table"),
    _recorded_case("input-fields-wrong", {"models": {"a": {"path": 1, "file": [], "sha256": None}},
                                          "output": {"model": "a"}}, "models.a is not { path, file, sha256 }"),
    _recorded_case("input-file-traversal", {"models": {"a": {"path": "/nonexistent/x", "file": "../../etc/passwd",
                                                             "sha256": "0" * 64}}, "output": {"model": "a"}},
                   "models.a is not { path, file, sha256 }"),
    _recorded_case("3000-nodes", {"models": "INPUT", "nodes": _chain(3000), "output": {"model": "n2999"}},
                   "3000 nodes"),
    _recorded_case("cycle", {"models": "INPUT", "nodes": {"x": {"method": "weighted-sum", "models": ["a", "x"]}},
                             "output": {"model": "x"}}, "cycle"),
    _recorded_case("output-model-array", {"models": "INPUT", "nodes": {"mix": MIX}, "output": {"model": ["mix"]}},
                   "output.model must be a model or node name"),
]


# --- merges of files that are not SD1 models ---

def _random_tensors(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    path = folder / "random.safetensors"
    save_file({f"w{i}": torch.rand(64, 64, generator=g) for i in range(8)}, str(path))
    return path


def _lora(folder: Path) -> Path:
    return folder / "tiny-lora.safetensors"


def _checkpoint_copy(folder: Path) -> Path:
    path = folder / "not-an-adapter.safetensors"
    shutil.copyfile(folder / "models" / "tiny.safetensors", path)
    return path


def _fifo(folder: Path) -> Path:
    path = folder / "pipe.safetensors"
    os.mkfifo(path)  # opening it to read would wait for a writer forever
    return path


MERGE_CASES = [
    HostileCase("merge-random-tensors", "merge-input", _random_tensors, (MERGE_FILE_TWICE, MERGE_AS_B),
                "holds no sd1 model weights", needs_model=True, note="wrote a 'model' with exit 0"),
    HostileCase("merge-lora-as-model", "merge-input", _lora, (MERGE_FILE_TWICE, MERGE_AS_B),
                "is a lora/lycoris file: use it in a bake node", needs_model=True,
                note="as B it was ignored and A written as the merge"),
    HostileCase("merge-checkpoint-as-adapter", "merge-input", _checkpoint_copy, (BAKE_IN_MERGE,),
                "is baked as an adapter but is a checkpoint", needs_model=True),
    HostileCase("merge-random-as-adapter", "merge-input", _random_tensors, (BAKE_IN_MERGE,),
                "holds no sd1 model weights", needs_model=True),
    HostileCase("merge-fifo-input", "merge-input", _fifo, (MERGE_AS_B, BAKE_IN_MERGE), "empty file",
                needs_model=True, note="a named pipe: any read of it would hang"),
    HostileCase("merge-dev-zero-input", "merge-input", lambda folder: Path("/dev/zero"), (MERGE_AS_B,),
                "empty file", needs_model=True, note="endless, and no regular file"),
]

CASES: list[HostileCase] = [*YAML_CASES, *RECIPE_CASES, *RECORDED_CASES, *MERGE_CASES]
