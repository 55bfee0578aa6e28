"""Hostile yaml sidecars, merge recipes and merge inputs (issue 20), through every command that opens them: each
ends in seconds and bounded memory with exit 2 and one line naming the file and the reason (`models scan` lists
the model as unreadable and goes on, as for hostile model files), and nothing is written. Then: outputs get
sd1kit's own yaml, never a copy; the class allow-list takes real SD1 configs; an input changed during a merge is
refused; identical runs give identical bytes; and the yaml and recipe readers, fuzzed, raise only Sd1kitError.
The cases are in sd1kit.dev.hostile_sidecars."""

from __future__ import annotations

import json
import os
import shutil
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sd1kit.dev.hostile import SCAN, case_builder, expand, run_command
from sd1kit.dev.hostile_sidecars import CASES, named
from sd1kit.errors import Sd1kitError
from sd1kit.formats import yaml_config
from sd1kit.formats.yaml_config import SD1_CLASSES, read_yaml_config, sd1_yaml, v1_inference_yaml

MAX_SECONDS, MAX_MB = 5.0, 500
BY_NAME = {c.name: c for c in CASES}
RUNS = [(c.name, i) for c in CASES for i in range(len(c.commands))]


def _label(argv: tuple[str, ...]) -> str:
    return "-".join(a for a in argv[:2] if not a.startswith("{"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return case_builder(BY_NAME, tmp_path_factory.mktemp)


@pytest.mark.parametrize("name,index", RUNS, ids=[f"{n}-{i}-{_label(BY_NAME[n].commands[i])}" for n, i in RUNS])
def test_hostile_sidecar_through_command(name, index, built):
    case = BY_NAME[name]
    folder, values = built(name)
    template = case.commands[index]
    outcome = run_command(expand(template, **values), timeout=30)
    assert outcome.exit_code is not None, f"killed: {outcome.describe()}"
    assert outcome.seconds < MAX_SECONDS and outcome.peak_rss_mb < MAX_MB, outcome.describe()
    assert not (folder / "pwned").exists() and not (Path.cwd() / "pwned").exists(), "a payload ran"
    written = sorted(p.name for p in (folder / "out").iterdir())
    shutil.rmtree(folder / "out")
    (folder / "out").mkdir()
    if template == SCAN:  # a listing goes on past a bad file, which it reports as unreadable
        assert outcome.exit_code == 0, outcome.describe()
        entry = outcome.stdout.split(values["file"], 1)[1].split("\n/", 1)[0]
        assert "problem:" in entry and case.expect in entry.lower(), entry
        return
    assert outcome.exit_code == case.exit_code, outcome.describe()
    assert len(outcome.lines) == 1, outcome.stderr
    line = outcome.lines[0]
    assert line.startswith("sd1kit: ") and named(case, values) in line and case.expect in line.lower(), line
    assert not written, f"a refused command wrote {written}"


# --- outputs get sd1kit's own yaml ---

HARMLESS = "# downloaded with the model; a comment and an extra key sd1kit does not write\n"


@pytest.fixture(scope="module")
def vmodel(tmp_path_factory):
    """A v-prediction tiny model whose yaml is legit but not byte-for-byte sd1kit's, and a LoRA for it."""
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.dev.tiny import write_tiny_model
    from sd1kit.formats.source import open_source

    folder = tmp_path_factory.mktemp("vmodel")
    model = write_tiny_model(folder / "fluff.safetensors", layout="easyfluff", prediction="v", seed=3)
    text = HARMLESS + v1_inference_yaml(v_prediction=True).replace("    use_ema: False\n",
                                                                   "    use_ema: False\n    extra_note: 1\n")
    model.with_suffix(".yaml").write_text(text)
    lora = folder / "lora.safetensors"
    write_synthetic_adapter(lora, open_source(model).shapes, rank=2)
    return model, lora


def _run_output(kind: str, model: Path, lora: Path, out: Path):
    from sd1kit.adapters.bake import bake
    from sd1kit.convert import convert
    from sd1kit.merge.recipe import short_recipe
    from sd1kit.merge.run import merge

    if kind == "convert":
        return convert(model, out)
    if kind == "merge":
        return merge(short_recipe([str(model), str(model)], "weighted-sum", {"alpha": 0.5}), out)
    return bake(model, [(str(lora), 0.5)], out)


@pytest.mark.parametrize("kind", ["convert", "merge", "bake"])
def test_outputs_get_sd1kits_own_yaml_not_a_copy(vmodel, tmp_path, kind):
    model, lora = vmodel
    result = _run_output(kind, model, lora, tmp_path / "out.safetensors")
    assert result.yaml == tmp_path / "out.yaml"
    written = result.yaml.read_text()
    assert written == sd1_yaml("v", 4) and written != model.with_suffix(".yaml").read_text()
    assert read_yaml_config(result.yaml).prediction == "v"


def test_yaml_only_where_the_output_needs_one(tmp_path):
    from sd1kit.convert import convert
    from sd1kit.dev.tiny import write_tiny_model

    eps = write_tiny_model(tmp_path / "eps.safetensors", seed=4)
    assert convert(eps, tmp_path / "eps-out.safetensors").yaml is None  # A1111 / ComfyUI tell eps from weights
    eps.with_suffix(".yaml").write_text(HARMLESS + v1_inference_yaml())
    result = convert(eps, tmp_path / "eps-yaml-out.safetensors")  # the input had one: the output gets one
    assert result.yaml.read_text() == v1_inference_yaml()
    inpaint = write_tiny_model(tmp_path / "inpaint.safetensors", layout="inpainting", seed=5)
    result = convert(inpaint, tmp_path / "inpaint-v.safetensors", prediction="v")
    config = yaml.safe_load(result.yaml.read_text())["model"]
    assert config["target"] == "ldm.models.diffusion.ddpm.LatentInpaintDiffusion"
    assert config["params"]["parameterization"] == "v"
    assert config["params"]["unet_config"]["params"]["in_channels"] == 9


# --- the allow-list takes real SD1 configs ---

SCHEDULER = ("    scheduler_config:\n      target: ldm.lr_scheduler.LambdaLinearScheduler\n      params:\n"
             "        warm_up_steps: [ 10000 ]\n        cycle_lengths: [ 10000000000000 ]\n"
             "        f_start: [ 1.e-6 ]\n        f_max: [ 1. ]\n        f_min: [ 1. ]\n\n    unet_config:\n")
CONTROL = ("    control_stage_config:\n      target: cldm.cldm.ControlNet\n      params:\n        hint_channels: 3\n"
           "        model_channels: 320\n\n    unet_config:\n")
DATA = ("data:\n  target: main.DataModuleFromConfig\n  params:\n    batch_size: 128\n    validation:\n"
        "      target: edit_dataset.EditDataset\n      params:\n        path: data/clip-filtered-dataset\n")


def _real_configs() -> dict[str, str]:
    """The SD1 configs in use, in the shape they are published in (v1-inference and its v-prediction copy,
    v1-inpainting-inference, A1111's instruct-pix2pix with its data: section, ControlNet's cldm_v15, an
    autoencoder training loss), built from sd1kit's template plus each one's extra sections."""
    base = sd1_yaml()
    return {
        "v1-inference": base.replace("    unet_config:\n", SCHEDULER, 1),
        "v1-inference-v": sd1_yaml("v").replace("    unet_config:\n", SCHEDULER, 1),
        "v1-inpainting-inference": sd1_yaml(in_channels=9).replace("    unet_config:\n", SCHEDULER, 1),
        "instruct-pix2pix": sd1_yaml(in_channels=8) + "\n" + DATA,
        "instruct-pix2pix-ldm": sd1_yaml(in_channels=8).replace("modules.models.diffusion.ddpm_edit",
                                                                "ldm.models.diffusion.ddpm_edit"),
        "cldm_v15": base.replace("ldm.models.diffusion.ddpm.LatentDiffusion", "cldm.cldm.ControlLDM").replace(
            "ldm.modules.diffusionmodules.openaimodel.UNetModel", "cldm.cldm.ControlledUnetModel").replace(
            "    unet_config:\n", CONTROL, 1),
        "autoencoder-loss": base.replace("target: torch.nn.Identity",
                                         "target: ldm.modules.losses.LPIPSWithDiscriminator\n"
                                         "          params:\n            disc_start: 50001"),
    }


@pytest.mark.parametrize("name", sorted(_real_configs()))
def test_real_sd1_configs_are_accepted(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(_real_configs()[name])
    config = read_yaml_config(path)
    assert config.prediction == ("v" if name.endswith("-v") else "epsilon")
    assert config.ignored_targets and set(config.ignored_targets) <= SD1_CLASSES


@pytest.mark.parametrize("loader", ["libyaml", "python"])
def test_bounds_hold_with_either_parser(tmp_path, monkeypatch, loader):
    """PyYAML without libyaml parses in Python: the same refusals, in time (its event stream does not recurse)."""
    if loader == "python":
        monkeypatch.setattr(yaml_config, "_LOADER", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    for text, expect in [("[" * 100_000 + "]" * 100_000, "nested deeper"), ("a: &a [*a]\n", "anchors"),
                         ("{a: " * 100_000 + "1" + "}" * 100_000, "nested deeper"),
                         ("model:\n  target: os.system\n", "is not an SD1 class")]:
        path = tmp_path / "x.yaml"
        path.write_text(text)
        with pytest.raises(Sd1kitError, match=expect):
            read_yaml_config(path)


# --- merges: inputs that change, inputs that are not models, recipes at their bounds ---

@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from sd1kit.dev.tiny import write_tiny_model

    folder = tmp_path_factory.mktemp("pair")
    return [write_tiny_model(folder / f"{n}.safetensors", seed=s) for n, s in (("a", 11), ("b", 12), ("c", 13))]


def _replace_by_rename(b: Path, c: Path) -> None:
    tmp = b.with_name("b.new")
    shutil.copyfile(c, tmp)
    os.replace(tmp, b)


def _overwrite_in_place(b: Path, c: Path) -> None:
    with open(b, "r+b") as f:  # same inode, same size: only mtime / ctime tell
        f.seek(-4096, os.SEEK_END)
        f.write(c.read_bytes()[-4096:])


@pytest.mark.parametrize("change", [_replace_by_rename, _overwrite_in_place], ids=["renamed-over", "in-place"])
def test_input_changed_during_merge_is_refused(pair, tmp_path, change):
    from sd1kit.merge.recipe import short_recipe
    from sd1kit.merge.run import merge

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    shutil.copyfile(pair[0], a)
    shutil.copyfile(pair[1], b)
    calls = []

    def progress(done, total):
        if not calls:
            change(b, pair[2])
        calls.append(done)

    out = tmp_path / "out.safetensors"
    with pytest.raises(Sd1kitError, match="changed on disk during the merge") as e:
        merge(short_recipe([str(a), str(b)], "weighted-sum", {"alpha": 0.5}), out, progress=progress)
    assert str(b) in str(e.value) and calls
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_input_changed_between_open_and_run_is_refused(pair, tmp_path):
    from sd1kit.merge.recipe import short_recipe
    from sd1kit.merge.run import Merger

    b = tmp_path / "b.safetensors"
    shutil.copyfile(pair[1], b)
    merger = Merger(short_recipe([str(pair[0]), str(b)], "weighted-sum", {}), tmp_path / "out.safetensors")
    _replace_by_rename(b, pair[2])  # before the hashes are taken and any tensor is read
    with pytest.raises(Sd1kitError, match="changed on disk"):
        merger.run()
    assert not (tmp_path / "out.safetensors").exists()


def test_inputs_used_only_in_their_roles(pair, vmodel, tmp_path):
    from sd1kit.merge.recipe import recipe_from_dict
    from sd1kit.merge.run import merge

    _, lora = vmodel
    models = {"a": str(pair[0]), "b": str(pair[1]), "l": str(lora)}
    wrong = [({"mix": {"method": "weighted-sum", "models": ["a", "b"]}}, {"model": "mix", "vae": "l"},
              "'l' is a LoRA/LyCORIS file"),
             ({"baked": {"method": "bake", "models": ["a"], "adapters": {"b": 1.0}}}, {"model": "baked"},
              "'b' is baked as an adapter but is a checkpoint")]
    for nodes, output, expect in wrong:
        with pytest.raises(Sd1kitError, match=expect):
            merge(recipe_from_dict({"models": models, "nodes": nodes, "output": output}), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_recipe_at_its_depth_bound_runs(pair, tmp_path):
    """64 nodes deep is allowed, and the merge (which recurses once per level) runs it."""
    from safetensors.torch import load_file

    from sd1kit.merge.recipe import MAX_DEPTH, recipe_from_dict
    from sd1kit.merge.run import merge

    nodes = {f"n{i}": {"method": "no-interpolation", "models": [f"n{i - 1}" if i else "a"]} for i in range(MAX_DEPTH)}
    recipe = recipe_from_dict({"models": {"a": str(pair[0])}, "nodes": nodes, "output": {"model": f"n{MAX_DEPTH - 1}"}})
    out = merge(recipe, tmp_path / "deep.safetensors").out
    a = load_file(str(pair[0]))
    got = load_file(str(out))
    assert all(k not in got or (got[k] == a[k]).all() for k in a)
    nodes[f"n{MAX_DEPTH}"] = {"method": "no-interpolation", "models": [f"n{MAX_DEPTH - 1}"]}
    with pytest.raises(Sd1kitError, match="levels deep"):
        recipe_from_dict({"models": {"a": str(pair[0])}, "nodes": nodes})


# --- identical runs, identical bytes ---

RUN_ALL = """
import sys
from pathlib import Path
from sd1kit.adapters.bake import bake
from sd1kit.convert import convert
from sd1kit.merge.recipe import short_recipe
from sd1kit.merge.run import merge
model, lora, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
convert(model, out / "convert.safetensors")
merge(short_recipe([str(model), str(model)], "weighted-sum", {"alpha": 0.5}), out / "merge.safetensors")
bake(model, [(lora, 0.5)], out / "bake.safetensors")
"""


def test_outputs_are_byte_identical_across_runs(vmodel, tmp_path):
    """convert, merge and bake, each run twice in fresh processes (the safetensors library orders metadata by a
    hash map seeded per process): the same inputs give the same bytes, yaml included."""
    import subprocess
    import sys

    model, lora = vmodel
    runs = [tmp_path / "run1", tmp_path / "run2"]
    for out in runs:
        out.mkdir()
        subprocess.run([sys.executable, "-c", RUN_ALL, str(model), str(lora), str(out)], check=True, timeout=300)
    names = sorted(p.name for p in runs[0].iterdir())
    assert names == sorted(p.name for p in runs[1].iterdir())
    assert {"convert.yaml", "merge.yaml", "bake.yaml"} <= set(names)
    differ = [n for n in names if (runs[0] / n).read_bytes() != (runs[1] / n).read_bytes()]
    assert not differ, f"two runs wrote different bytes: {differ}"


# --- fuzzing: only Sd1kitError escapes the readers ---

KEYS = st.sampled_from(["model", "params", "target", "_target_", "class_path", "parameterization", "use_ema",
                        "scale_factor", "cond_stage_config", "layer_idx", "unet_config"]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
           | st.sampled_from([10**400, -(2**64), 2**63, -2, float("inf")])
           | st.sampled_from(sorted(SD1_CLASSES) + ["os.system", "v", "eps", "-2"]))
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                     max_leaves=40)
YAML_ALPHABET = string.printable + "&*!|>%@`\u00e9\u3042\x00\ufeff"
FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_sd1kit_errors(fn, *args):
    try:
        fn(*args)
    except Sd1kitError:
        pass


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(tree=TREES)
def test_fuzz_yaml_trees(fuzz_dir, tree):
    path = fuzz_dir / "tree.yaml"
    path.write_text(yaml.safe_dump({"model": tree} if not isinstance(tree, dict) else tree, allow_unicode=True))
    _only_sd1kit_errors(read_yaml_config, path)


@FUZZ
@given(data=st.data())
def test_fuzz_yaml_text(fuzz_dir, data):
    """A real config with random text spliced in, or random text alone (as bytes: not always UTF-8)."""
    base = v1_inference_yaml(v_prediction=data.draw(st.booleans()))
    at = data.draw(st.integers(0, len(base)))
    noise = data.draw(st.text(YAML_ALPHABET, max_size=40))
    text = data.draw(st.sampled_from([base[:at] + noise + base[at:], noise, base[:at]]))
    path = fuzz_dir / "text.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") + data.draw(st.binary(max_size=4)))
    _only_sd1kit_errors(read_yaml_config, path)


RECIPE_VALUES = st.recursive(SCALARS | st.sampled_from(["a", "b", "mix", "bake", "weighted-sum", "ties", "dare",
                                                        "GRAD_V", "fp16"]),
                             lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                 st.sampled_from(["a", "b", "mix", "method", "models", "alpha", "blocks", "adapters",
                                                  "seed", "model", "vae", "dtype", "force"]), inner, max_size=4),
                             max_leaves=30)
VALID_RECIPE = {"models": {"a": "a.safetensors", "b": "b.safetensors", "l": "l.safetensors"},
                "nodes": {"mix": {"method": "weighted-sum", "models": ["a", "b"], "alpha": 0.3, "blocks": "GRAD_V"},
                          "baked": {"method": "bake", "models": ["mix"], "adapters": {"l": 0.5}}},
                "output": {"model": "baked", "vae": "a", "dtype": "fp16"}}


def _replace_at(tree, path: list, value):
    """A copy of `tree` with the value at `path` (keys into dicts, indexes into lists) replaced."""
    if not path:
        return value
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = _replace_at(copy[path[0]], path[1:], value)
    return copy


def _paths(tree, prefix=()):
    yield list(prefix)
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


@FUZZ
@given(data=st.data())
def test_fuzz_recipes(data):
    """A valid recipe with one field replaced by anything, or anything at all; as a dict and as recorded JSON."""
    from sd1kit.merge.recipe import parse_recipe_json, recipe_from_dict

    path = data.draw(st.sampled_from(list(_paths(VALID_RECIPE))))
    recipe = data.draw(st.one_of(st.just(None), RECIPE_VALUES))
    recipe = _replace_at(VALID_RECIPE, path, recipe) if data.draw(st.booleans()) else recipe
    _only_sd1kit_errors(recipe_from_dict, recipe)
    text = json.dumps(recipe, allow_nan=True)
    _only_sd1kit_errors(lambda: recipe_from_dict(parse_recipe_json(text, "merged.safetensors")))


@FUZZ
@given(text=st.text(string.printable + "[]{}.=\"'#", max_size=300))
def test_fuzz_recipe_toml_text(fuzz_dir, text):
    from sd1kit.merge.recipe import load_recipe

    path = fuzz_dir / "recipe.toml"
    path.write_text("[models]\na = 'a.safetensors'\n" + text)
    _only_sd1kit_errors(load_recipe, path)
