"""Checkpoint merging: methods against sd-mecha, block weights, recipes, streaming == in memory, provenance and
redo, prediction checks, A1111's inpainting rule, safety (kill test), the guide's recipes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sd1kit.errors import Sd1kitError
from sd1kit.merge import methods as M
from sd1kit.merge.blocks import BLOCKS, PRESETS, block_of, parse_blocks
from sd1kit.merge.recipe import load_recipe, recipe_from_dict, short_recipe
from sd1kit.merge.run import merge, recipe_from_output

ROOT = Path(__file__).resolve().parents[1]
G = torch.Generator().manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64)


def mecha():
    from sd_mecha.extensions.builtin.merge_methods import cosine, linear, ties

    return linear, cosine, ties


# --- methods against sd-mecha ---

@pytest.mark.parametrize("shape", [(320, 768), (640, 320, 3, 3), (320,)])
def test_methods_equal_sd_mecha(shape):
    linear, cosine, ties = mecha()
    a, b, c = rnd(*shape), rnd(*shape), rnd(*shape)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    k = "key"
    pairs = [
        (M.weighted_sum(a, b, 0.3), linear.weighted_sum.__wrapped__({k: a}, {k: b}, alpha=alpha, key=k)),
        (M.add_difference(a, b, c, 0.3), linear.add_difference.__wrapped__({k: a}, {k: b - c}, alpha=alpha, key=k)),
        (M.train_difference(a, b, c, 0.3),
         linear.add_difference.__wrapped__({k: a}, {k: b - c}, key=k,
                                           alpha=linear.train_difference_mask.__wrapped__(a, b, c, alpha=alpha))),
        (M.cosine_a(a, b, 0.3), cosine.add_cosine_a.__wrapped__(a, b, alpha=alpha)),
        (M.cosine_b(a, b, 0.3), cosine.add_cosine_b.__wrapped__(a, b, alpha=alpha)),
        (M.ties(a, b, c, alpha=0.7, k=0.3), a + 0.7 * ties.ties_sum.__wrapped__(b - a, c - a, k=0.3)),
        (M.ties(a, b, c, alpha=1.0, k=0.5, vote_sgn=True),
         a + ties.ties_sum.__wrapped__(b - a, c - a, k=0.5, vote_sgn=True)),
        (M.dare(a, b, c, alpha=0.5, probability=0.7, seed=42),
         a + 0.5 * ties.dropout.__wrapped__(b - a, c - a, probability=0.7, seed=42)),
    ]
    for got, expected in pairs:
        assert torch.linalg.norm(got - expected) <= 1e-6 * max(float(torch.linalg.norm(expected)), 1e-12)


def test_supermerger_only_methods_by_hand():
    a, b, c = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0]), torch.tensor([-1.0, 0.0])
    torch.testing.assert_close(M.sum_twice(a, b, c, 0.5, 0.25), torch.tensor([1.25, 3.0]))  # (2, 4)*.75 + c*.25
    torch.testing.assert_close(M.triple_sum(a, b, c, 0.25, 0.5), torch.tensor([0.5, 2.0]))  # .25a + .25b + .5c
    assert M.weighted_sum(a, b, 0) is a and M.weighted_sum(a, b, 1) is b and M.no_interpolation(a) is a
    assert torch.equal(M.add_difference(a, b, c, 0), a)


def test_block_table():
    assert block_of("cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight") == "BASE"
    assert block_of("model.diffusion_model.time_embed.0.weight") == "BASE"
    assert block_of("model.diffusion_model.input_blocks.4.1.proj_in.weight") == "IN04"
    assert block_of("model.diffusion_model.middle_block.1.norm.weight") == "M00"
    assert block_of("model.diffusion_model.output_blocks.11.0.in_layers.2.weight") == "OUT11"
    assert block_of("model.diffusion_model.out.2.weight") == "OUT11"
    assert len(BLOCKS) == 26 and all(len(v) == 26 for v in PRESETS.values())
    assert parse_blocks("GRAD_V")[1] == 1.0 and parse_blocks(" ".join(["0.5"] * 25))[0] == 0.5
    with pytest.raises(Sd1kitError, match="26"):
        parse_blocks("1,2,3")


# --- merging tiny SD1 checkpoints ---

@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):
    from sd1kit.dev.tiny import write_tiny_model

    folder = tmp_path_factory.mktemp("merge-inputs")
    paths = {"a": folder / "a.safetensors", "b": folder / "b.safetensors", "c": folder / "c.safetensors",
             "inpaint": folder / "inpaint.safetensors", "v": folder / "v.safetensors"}
    for seed, name in enumerate(("a", "b", "c"), start=20):
        write_tiny_model(paths[name], seed=seed)
    write_tiny_model(paths["inpaint"], layout="inpainting", seed=30)
    write_tiny_model(paths["v"], layout="easyfluff", prediction="v", seed=31)
    return paths


def _in_memory(method, paths, **params):
    """The same merge done the simple way: whole state dicts, one method call per key."""
    sds = [load_file(str(p)) for p in paths]
    out = {}
    for key, a in sds[0].items():
        if key.endswith("position_ids"):  # rebuilt at load time; sd1kit writes none
            continue
        values = [sd[key].float() for sd in sds]
        out[key] = method(*values, **params).to(a.dtype) if a.is_floating_point() else a
    return out


@pytest.mark.parametrize("method, names, params", [
    ("weighted-sum", "ab", {"alpha": 0.3}), ("add-difference", "abc", {"alpha": 0.7}),
    ("sum-twice", "abc", {"alpha": 0.4, "beta": 0.2}), ("train-difference", "abc", {"alpha": 1.0}),
    ("ties", "abc", {"alpha": 1.0, "k": 0.3}), ("dare", "ab", {"alpha": 1.0, "probability": 0.5, "seed": 3}),
])
def test_streaming_equals_in_memory_bit_exact(models, tmp_path, method, names, params, monkeypatch):
    monkeypatch.setattr("sd1kit.merge.run.CHUNK", 1000)  # slices smaller than most tiny tensors
    paths = [models[n] for n in names]
    recipe = short_recipe([str(p) for p in paths], method, params)
    out = merge(recipe, tmp_path / "out.safetensors").out
    got = load_file(str(out))
    expected = _in_memory(M.method(method).function, paths, **params)
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)


def test_block_weights_pick_blocks(models, tmp_path):
    out = merge(short_recipe([str(models["a"]), str(models["b"])], "weighted-sum", {"alpha": 0.5}, blocks="GRAD_V"),
                tmp_path / "o.safetensors").out
    got, a, b = load_file(str(out)), load_file(str(models["a"])), load_file(str(models["b"]))
    conv_in = "model.diffusion_model.input_blocks.0.0.weight"  # IN00: 1 -> B
    mid = "model.diffusion_model.middle_block.0.in_layers.2.weight"  # M00: 0 -> A
    te = "cond_stage_model.transformer.text_model.final_layer_norm.weight"  # BASE: 0 -> A
    assert torch.equal(got[conv_in], b[conv_in]) and torch.equal(got[mid], a[mid]) and torch.equal(got[te], a[te])
    last = "model.diffusion_model.out.2.weight"  # OUT11: 1 -> B
    assert torch.equal(got[last], b[last])


def test_inpainting_add_difference_as_a1111(models, tmp_path):
    recipe = short_recipe([str(models["inpaint"]), str(models["b"]), str(models["c"])], "add-difference", {"alpha": 1.0})
    got = load_file(str(merge(recipe, tmp_path / "o.safetensors").out))
    inp, b, c = (load_file(str(models[n])) for n in ("inpaint", "b", "c"))
    key = "model.diffusion_model.input_blocks.0.0.weight"
    assert got[key].shape[1] == 9
    expected = inp[key].float()[:, :4] + (b[key].float() - c[key].float())
    torch.testing.assert_close(got[key][:, :4].float(), expected.to(got[key].dtype).float())
    assert torch.equal(got[key][:, 4:], inp[key][:, 4:])
    wrong = short_recipe([str(models["b"]), str(models["inpaint"]), str(models["c"])], "add-difference", {})
    with pytest.raises(Sd1kitError, match="must come first"):
        merge(wrong, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_components_and_vae_from_other_inputs(models, tmp_path):
    recipe = short_recipe([str(models["a"]), str(models["b"])], "weighted-sum", {"alpha": 0.5},
                          vae=str(models["c"]), components={"text_encoder": "B"})
    got = load_file(str(merge(recipe, tmp_path / "o.safetensors").out))
    b, c = load_file(str(models["b"])), load_file(str(models["c"]))
    assert all(torch.equal(got[k], b[k]) for k in b if k.startswith("cond_stage_model.") and "position_ids" not in k)
    assert all(torch.equal(got[k], c[k]) for k in c if k.startswith("first_stage_model."))


def test_vae_baked_from_an_a1111_vae_file(models, tmp_path):
    from sd1kit.formats.keys.ldm import VAE_PREFIX

    c = load_file(str(models["c"]))
    vae = {k[len(VAE_PREFIX):]: v for k, v in c.items() if k.startswith(VAE_PREFIX)}
    torch.save({"state_dict": {**vae, "loss.logvar": torch.zeros(())}}, tmp_path / "animevae.pt")
    recipe = short_recipe([str(models["a"])], "no-interpolation", {}, vae=str(tmp_path / "animevae.pt"))
    got = load_file(str(merge(recipe, tmp_path / "o.safetensors").out))
    a = load_file(str(models["a"]))
    assert all(torch.equal(got[k], c[k].to(got[k].dtype)) for k in c if k.startswith(VAE_PREFIX))
    assert all(torch.equal(got[k], a[k]) for k in a if k.startswith("model.diffusion_model."))


def test_provenance_and_redo(models, tmp_path, cli):
    out = tmp_path / "mix.safetensors"
    r = cli("merge", models["a"], models["b"], "--alpha", "0.25", "--blocks", "SMOOTHSTEP", "--out", out, "--quiet")
    assert r.code == 0, r.err
    from sd1kit.formats.safetensors_io import read_header

    record = json.loads(read_header(out).metadata["sd1kit_recipe"])
    assert record["nodes"]["merged"]["alpha"] == 0.25 and len(record["nodes"]["merged"]["blocks"]) == 26
    assert all(len(m["sha256"]) == 64 for m in record["models"].values())
    assert "merged from A = a.safetensors" in cli("inspect", out, "--no-hash").out
    again = tmp_path / "again.safetensors"
    assert cli("merge", "--recipe-from", out, "--out", again, "--quiet").code == 0
    assert again.read_bytes() == out.read_bytes()
    src, moved = tmp_path / "src", tmp_path / "moved"  # inputs found again beside the merged file, by sha256
    src.mkdir()
    for name in ("a", "b"):
        shutil.copy(models[name], src / f"{name}.safetensors")
    merge(short_recipe([str(src / "a.safetensors"), str(src / "b.safetensors")], "weighted-sum", {}),
          src / "mix.safetensors")
    src.rename(moved)
    recipe = recipe_from_output(moved / "mix.safetensors")
    assert sorted(p.name for p in recipe.models.values()) == ["a.safetensors", "b.safetensors"]
    assert all(p.parent == moved.resolve() for p in recipe.models.values())
    (moved / "b.safetensors").write_bytes((moved / "a.safetensors").read_bytes())
    with pytest.raises(Sd1kitError, match="not the file the merge used"):
        recipe_from_output(moved / "mix.safetensors")


def test_prediction_types_checked_and_carried(models, tmp_path):
    with pytest.raises(Sd1kitError, match="disagree on prediction"):
        merge(short_recipe([str(models["a"]), str(models["v"])], "weighted-sum", {}), tmp_path / "x.safetensors")
    result = merge(short_recipe([str(models["v"]), str(models["a"])], "weighted-sum", {}, force=True),
                   tmp_path / "v-mix.safetensors")
    assert result.prediction == "v" and result.yaml is not None and "parameterization" in result.yaml.read_text()
    from sd1kit.report import inspect_path

    assert inspect_path(result.out).detection.prediction == "v"


def test_bad_merges_are_clear_errors(models, tmp_path, tiny_models, monkeypatch):
    with pytest.raises(Sd1kitError, match="replace an input"):
        merge(short_recipe([str(models["a"]), str(models["b"])], "ws", {}), models["a"])
    with pytest.raises(Sd1kitError, match="unknown merge method 'weighted-summ'; did you mean"):
        short_recipe([str(models["a"]), str(models["b"])], "weighted-summ", {})
    with pytest.raises(Sd1kitError, match="takes 3 models"):
        short_recipe([str(models["a"]), str(models["b"])], "add-difference", {})
    with pytest.raises(Sd1kitError, match="cycle"):
        recipe_from_dict({"models": {"a": str(models["a"])}, "nodes": {
            "x": {"method": "weighted-sum", "models": ["a", "y"]}, "y": {"method": "weighted-sum", "models": ["x", "a"]}}})
    from safetensors.torch import save_file

    sd = load_file(str(models["b"]))
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    sd[key] = torch.zeros(sd[key].shape[0], sd[key].shape[1] * 2, dtype=sd[key].dtype)
    other = tmp_path / "wide.safetensors"
    save_file(sd, str(other))
    with pytest.raises(Sd1kitError, match=r"attn2\.to_k\.weight: .*do not fit"):
        merge(short_recipe([str(models["a"]), str(other)], "weighted-sum", {}), tmp_path / "y.safetensors")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(Sd1kitError, match="not enough free space"):
        merge(short_recipe([str(models["a"]), str(models["b"])], "weighted-sum", {}), tmp_path / "z.safetensors")
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "z.safetensors").exists()


def test_kill_midway_leaves_inputs_and_no_output(models, tmp_path):
    """SIGKILL at random points of a running merge: inputs byte-identical, nothing at the output path."""
    before = {n: models[n].read_bytes() for n in ("a", "b")}
    rng = random.Random(5)
    killed_while_writing = 0
    for attempt in range(6):
        out = tmp_path / f"out{attempt}.safetensors"
        proc = subprocess.Popen([sys.executable, "-m", "sd1kit.cli", "merge", str(models["a"]), str(models["b"]),
                                 "--method", "ties", "--out", str(out), "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob(f".{out.name}.*.tmp")):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_while_writing += 1
            assert not out.exists()
        for tmp in tmp_path.glob(f".{out.name}.*.tmp"):
            tmp.unlink()
    assert killed_while_writing >= 3
    assert all(models[n].read_bytes() == before[n] for n in before)


@pytest.mark.parametrize("recipe_name", ["easyfluff-hll.toml", "based-style.toml", "nai-blocks.toml"])
def test_the_guides_recipes_run(recipe_name, tmp_path, tiny_models):
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.dev.tiny import write_tiny_model
    from sd1kit.formats.source import open_source

    recipe_path = tmp_path / recipe_name
    shutil.copy(ROOT / "docs" / "recipes" / recipe_name, recipe_path)
    recipe = load_recipe(recipe_path)
    for i, (name, path) in enumerate(recipe.models.items()):
        if "hll" in path.name:
            write_synthetic_adapter(path, open_source(tiny_models["easyfluff"]).shapes, algorithm="lokr")
        elif path.suffix == ".pt":
            shutil.copy(tiny_models["sd15"], path.with_suffix(".safetensors"))
            recipe.models[name] = path.with_suffix(".safetensors")
        elif "fluff" in path.name.lower():
            write_tiny_model(path, layout="easyfluff", prediction="v", seed=40 + i)
        else:
            write_tiny_model(path, layout="nai" if path.suffix == ".ckpt" else "sd15", seed=40 + i)
    result = merge(recipe, tmp_path / "out.safetensors")
    assert result.out.is_file() and result.keys > 900
    assert (result.prediction == "v") == ("fluff" in recipe_path.read_text().lower())
