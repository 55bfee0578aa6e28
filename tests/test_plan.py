"""The generation plan: one option table for every surface, settings with their sources, modifiers that compose or
are refused before any work, and no infotext naming what did not run."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from sd1kit.errors import Sd1kitError
from sd1kit.metadata.infotext import parse_infotext
from sd1kit.pipeline.option_surfaces import (
    add_cli_flags, api_fields, cli_args, options_from_api, options_from_cli,
)
from sd1kit.pipeline.options import OPTIONS, WriteContext, infotext_params, options_from_infotext
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.sampling.registry import resolve_sampler


def _context_request(option, value) -> GenerationRequest:
    base = {"width": 512, "height": 512, "clip_skip": 1, "cfg_rescale": 0.0, **option.context}
    return GenerationRequest(**base).with_(**option.changes(value))


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.infotext], ids=lambda o: o.attr)
def test_every_option_round_trips_request_infotext_request(option):
    assert option.example is not None and option.example != option.default, "every row declares an example"
    request = _context_request(option, option.example)
    spec, _ = resolve_sampler(request.sampler, request.schedule)
    ctx = WriteContext(seed=request.seed, subseed=request.subseed, size=(request.width, request.height),
                       sampler=spec, schedule_label=request.schedule, inpainting_model=True)
    params = infotext_params(request, ctx)
    assert option.infotext in params, f"{option.attr} is not written"
    from sd1kit.metadata.infotext import create_infotext

    fields = parse_infotext(create_infotext("p", "", params))
    values = options_from_infotext(fields)
    assert option.changes(option.example).items() <= values.items()


def _parser():
    parser = argparse.ArgumentParser()
    add_cli_flags(parser)
    return parser


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.cli or o.api], ids=lambda o: o.attr)
def test_every_option_is_on_every_surface_and_they_agree(option):
    assert option.cli and option.api, f"{option.attr} must have both a CLI flag and an API field"
    from_cli = options_from_cli(_parser().parse_args(cli_args(option, option.example)))
    kind = option.mode or "txt2img"
    payload = {**api_fields(option, option.example), **({"enable_hr": True} if option.context.get("enable_hr") else {})}
    from_api = options_from_api(payload, kind)
    from_api.pop("enable_hr", None) if option.attr != "enable_hr" else None
    assert from_cli == from_api == option.changes(option.example)


def test_table_has_no_duplicate_names():
    for what in ("attr", "cli"):
        names = [getattr(o, what) for o in OPTIONS if getattr(o, what)]
        assert len(names) == len(set(names)), what
    keyed = {}
    for o in OPTIONS:  # one infotext key is shared only by options of different job kinds / conditions
        if o.infotext:
            keyed.setdefault(o.infotext, []).append(o.attr)
    assert {k: v for k, v in keyed.items() if len(v) > 1} == {
        "Denoising strength": ["denoising_strength", "hr_denoising_strength"]}


def test_bad_values_are_refused_with_the_field_name():
    with pytest.raises(Sd1kitError, match="steps"):
        options_from_api({"steps": "many"}, "txt2img")
    with pytest.raises(Sd1kitError, match="cfg_scale: must be a finite number"):
        options_from_api({"cfg_scale": float("nan")}, "txt2img")
    with pytest.raises(Sd1kitError, match="denoising_strength: must be between 0 and 1"):
        options_from_api({"denoising_strength": 5}, "img2img")


def test_openapi_schema_comes_from_the_table():
    """/openapi.json documents every option row's payload field (override_settings ones in their object) with its
    type and bounds, in the pydantic models FastAPI validates with."""
    from fastapi.testclient import TestClient

    from sd1kit.server.app import ServerConfig, create_app

    schema = TestClient(create_app(ServerConfig())).get("/openapi.json").json()

    def resolved(entry):
        while "$ref" in entry or "anyOf" in entry and any("$ref" in e for e in entry["anyOf"]):
            ref = entry["$ref"] if "$ref" in entry else next(e["$ref"] for e in entry["anyOf"] if "$ref" in e)
            entry = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return entry

    for kind in ("txt2img", "img2img"):
        body = resolved(schema["paths"][f"/sdapi/v1/{kind}"]["post"]["requestBody"]["content"]["application/json"]
                        ["schema"])
        settings = resolved(body["properties"]["override_settings"])["properties"]
        for option in OPTIONS:
            if option.api and option.mode in (None, kind):
                names = option.api if isinstance(option.api, tuple) else (option.api,)
                for name in names:
                    entry = (settings if "." in name else body["properties"])[name.split(".")[-1]]
                    if option.bounds:
                        assert (entry["minimum"], entry["maximum"]) == tuple(map(float, option.bounds)), name
        assert {"styles", "alwayson_scripts", "override_settings_restore_afterwards"} <= set(body["properties"])


# --- modifiers: compose, or refused before any work; the infotext names only what ran ---

@pytest.fixture(scope="module")
def combo(tmp_path_factory):
    from PIL import Image

    from sd1kit.adapters.live import live_shapes
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.dev.controlnet import write_tiny_controlnet
    from sd1kit.pipeline.model import random_tiny_model

    folder = tmp_path_factory.mktemp("combo")
    model = random_tiny_model()
    (folder / "Lora").mkdir()
    write_synthetic_adapter(folder / "Lora" / "style.safetensors", live_shapes(model.modules), rank=4, seed=1)
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[16:48, 8:40] = 255
    Image.fromarray(picture).save(folder / "control.png")
    return {"model": model, "controlnet": write_tiny_controlnet(folder / "cn.safetensors", "ldm"),
            "image": folder / "control.png", "lora_dir": folder / "Lora"}


def _combo_request(combo, without=()):
    from sd1kit.pipeline.controlnet import ControlUnit

    unit = ControlUnit(str(combo["controlnet"]), str(combo["image"]), "none", 1.0, 0.0, 1.0, "Balanced",
                       "Crop and Resize", False)
    kw = {"prompt": "1girl" + ("" if "lora" in without else " <lora:style:1>"), "negative_prompt": "lowres",
          "steps": 6, "width": 64, "height": 64, "seed": 3, "lora_dir": str(combo["lora_dir"]),
          "deepcache": 0 if "deepcache" in without else 2, "token_merging": 0 if "token_merging" in without else 0.5,
          "controlnets": [] if "controlnet" in without else [unit]}
    return GenerationRequest(**kw)


def test_controlnet_deepcache_token_merging_and_lora_run_together(combo):
    from sd1kit.pipeline.generate import generate

    full = generate(_combo_request(combo), combo["model"])
    plan = full.plan
    assert [m.kind for m in plan.modifiers] == ["lora", "token_merging", "deepcache", "controlnet"]
    assert all(m.ran() for m in plan.modifiers)
    deepcache = next(m for m in plan.modifiers if m.kind == "deepcache")
    assert deepcache.as_json()["shallow_calls"] > 0  # it skipped, with the ControlNet's residuals
    text = full.images[0].infotext
    for key in ("Lora hashes: ", "Token merging ratio: 0.5", "DeepCache: 2", "ControlNet 0: "):
        assert key in text
    pixels = np.asarray(full.images[0].image).astype(int)
    for kind in ("lora", "token_merging", "deepcache", "controlnet"):
        other = generate(_combo_request(combo, without=(kind,)), combo["model"])
        assert not np.array_equal(np.asarray(other.images[0].image).astype(int), pixels), f"{kind} made no difference"
        names = {"lora": "Lora hashes", "token_merging": "Token merging", "deepcache": "DeepCache",
                 "controlnet": "ControlNet 0"}
        assert names[kind] not in other.images[0].infotext


def test_a_hires_prompt_s_own_loras_act_on_the_hires_pass_only(combo):
    """A1111 activates the hires prompt's extra networks for the second pass: a LoRA only in `hr_prompt` changes
    the hires pass and not the first; a LoRA only in the first prompt is off for the hires pass; the same tags in
    both are one stack for the whole run."""
    from sd1kit.pipeline.generate import generate

    base = GenerationRequest(prompt="1girl", steps=2, width=64, height=64, seed=5, lora_dir=str(combo["lora_dir"]),
                             enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", hr_denoising_strength=0.6)
    runs = {name: generate(base.with_(**kw), combo["model"]) for name, kw in {
        "none": {"hr_prompt": "1girl"}, "hires": {"hr_prompt": "1girl <lora:style:1>"},
        "first": {"prompt": "1girl <lora:style:1>", "hr_prompt": "1girl"},
        "both": {"prompt": "1girl <lora:style:1>", "hr_prompt": "1girl <lora:style:1>"},
        "same": {"prompt": "1girl <lora:style:1>"}}.items()}
    passes = {name: [m.as_json()["pass"] for m in r.plan.modifiers if m.kind == "lora"] for name, r in runs.items()}
    assert passes == {"none": [], "hires": ["hires"], "first": ["first"], "both": ["all"], "same": ["all"]}
    pixels = {name: np.asarray(r.images[0].image).astype(int) for name, r in runs.items()}
    assert np.array_equal(pixels["both"], pixels["same"])
    for a, b in (("none", "hires"), ("none", "first"), ("hires", "both"), ("first", "both")):
        assert not np.array_equal(pixels[a], pixels[b]), (a, b)
    assert "Lora hashes: " in runs["hires"].images[0].infotext and "Lora hashes" not in runs["none"].images[0].infotext


def test_a_modifier_that_cannot_apply_is_refused_before_sampling(combo):
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model

    steps = []
    with pytest.raises(Sd1kitError) as e:  # the tiny ControlNet was built beside another UNet topology
        generate(_combo_request(combo).with_(lora_dir=None, prompt="x"), load_model(),
                 callback=lambda *a: steps.append(a))
    assert steps == [] and "\n" not in str(e.value) and "ControlNet for a UNet of widths" in str(e.value)


def test_no_infotext_names_a_modifier_that_did_not_run(combo):
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.modifiers import Modifier

    class Idle(Modifier):
        kind = "idle"

        def params(self):
            return {"Idle thing": "yes"}

        def ran(self):
            return False

    from dataclasses import replace

    from sd1kit.pipeline.generate import run
    from sd1kit.pipeline.plan import plan

    p = plan(_combo_request(combo, without=("controlnet", "lora")), combo["model"])
    p = replace(p, modifiers=(*p.modifiers, Idle()))
    assert "Idle thing" in p.infotext(3, 3)  # the plan says it would be written...
    result = run(p)
    assert "Idle thing" not in result.images[0].infotext  # ...but it did not run, so it is not
    assert any("idle did not run" in w for w in result.warnings)
    assert generate  # the public entry is generate(request, model) = run(plan(request, model))


# --- model defaults decided once: the same v model through the library, the CLI and the API ---

@pytest.fixture
def catalog_v_model(tmp_path, tiny_models, monkeypatch):
    """A user catalog record: v-prediction, zero terminal SNR, clip skip 2, for a tiny file with no yaml."""
    import hashlib
    import shutil

    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    path = models / "mine.safetensors"
    shutil.copy(tiny_models["sd15"], path)  # an epsilon-looking file: only the catalog says v
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    record = tmp_path / "catalog.toml"
    record.write_text(f'''[[model]]
id = "my-vmodel"
name = "My v model"
kind = "checkpoint"
files = [{{ name = "mine.safetensors", sha256 = "{sha}", short = "{sha[:10]}" }}]
prediction = "v"
zero_terminal_snr = true
yaml = "v-prediction"
settings = {{ clip_skip = 2 }}
''')
    monkeypatch.setenv("SD1KIT_CATALOG", str(record))
    from sd1kit.catalog.catalog import _load

    _load.cache_clear()
    yield path
    _load.cache_clear()


def test_catalog_v_model_is_the_same_through_library_cli_and_api(catalog_v_model, cli, tmp_path):
    import base64
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from sd1kit.metadata.readers import read_picture
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model
    from sd1kit.server.app import ServerConfig, create_app

    from sd1kit.pipeline.runtime import resolve_runtime

    request = GenerationRequest(prompt="1girl, smile", negative_prompt="lowres", steps=3, width=64, height=64, seed=5)
    lib = generate(request, load_model(catalog_v_model, runtime=resolve_runtime(device="cpu")))  # the surfaces' auto
    settings = lib.plan.settings
    assert (settings["prediction"].value, settings["prediction"].source) == ("v", "catalog:my-vmodel")
    assert settings["zero_terminal_snr"].value is True and settings["clip_skip"].value == 2
    text = lib.images[0].infotext
    assert "Clip skip: 2" in text and "Noise Schedule: Zero Terminal SNR" in text
    r = cli("generate", "1girl, smile", "--negative", "lowres", "--model", catalog_v_model, "--steps", "3",
            "--size", "64x64", "--seed", "5", "--out", tmp_path / "cli", "--quiet")
    assert r.code == 0, r.err
    png = next((tmp_path / "cli").glob("*.png"))
    with TestClient(create_app(ServerConfig(models_dir=catalog_v_model.parent.parent))) as client:
        answer = client.post("/sdapi/v1/txt2img", json={
            "prompt": "1girl, smile", "negative_prompt": "lowres", "steps": 3, "width": 64, "height": 64, "seed": 5,
            "override_settings": {"sd_model_checkpoint": "mine"}})
        assert answer.status_code == 200, answer.text
        api_picture = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
        api_picture.load()
    pixels = np.asarray(lib.images[0].image)
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), pixels)
    assert np.array_equal(np.asarray(api_picture.convert("RGB")), pixels)
    assert read_picture(png).to_infotext() == text
    assert api_picture.info["parameters"] == text


# --- A1111 back-compatibility when reproducing an old picture ---

def _old_picture(path, version: str):
    from PIL import Image, PngImagePlugin

    from sd1kit.formats.hashes import file_hashes
    from sd1kit.pipeline.model import load_model

    model = load_model()
    # over 75 tokens: pad conds v0 cuts this negative to the prompt's one chunk
    negative = ", ".join(["lowres", "bad anatomy", "bad hands", "text", "error", "missing fingers"] * 8)
    text = (f"a [red:blue:0.5] circle, white background\nNegative prompt: {negative}\nSteps: 4, Sampler: DDIM, "
            f"Schedule type: Automatic, CFG scale: 7, Seed: 5, Size: 64x64, Model hash: {model.short_hash}, "
            f"Model: sd1kit-demo, Version: {version}")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (64, 64)).save(path, pnginfo=info)
    assert file_hashes(model.path).a1111_short == model.short_hash
    return path, negative


@pytest.mark.parametrize("version,switches", [
    ("v1.5.1", {"old_prompt_editing", "pad_conds_v0", "downcast_alphas_cumprod"}),
    ("v1.7.0", {"downcast_alphas_cumprod"}),
])
def test_from_an_old_picture_applies_a1111s_backcompat_switches(cli, tmp_path, version, switches):
    import json

    from PIL import Image

    picture, negative = _old_picture(tmp_path / "old.png", version)
    plan = json.loads(cli("generate", "--from", picture, "--dry-run").out)
    names = ("old_prompt_editing", "pad_conds_v0", "downcast_alphas_cumprod")
    for name in names:
        setting = plan["settings"][name]
        assert setting["value"] is (name in switches), name
        assert setting["source"].startswith("picture: A1111 " + version) == (name in switches), setting
    if "old_prompt_editing" in switches:  # 0.5 of the first pass: DDIM runs 4 steps -> the switch at step 2
        assert [s["until_step"] for s in plan["passes"][0]["prompt_schedule"]] == [2, 4]
    r = cli("generate", "--from", picture, "--out", tmp_path / "from", "--quiet")
    assert r.code == 0, r.err
    flags = [f"--{n.replace('_', '-')}" for n in names if n in switches]
    r = cli("generate", "a [red:blue:0.5] circle, white background", "--negative", negative, "--steps", "4",
            "--sampler", "DDIM", "--seed", "5", "--size", "64x64", *flags, "--out", tmp_path / "explicit", "--quiet")
    assert r.code == 0, r.err
    a, b = (next((tmp_path / d).glob("*.png")) for d in ("from", "explicit"))
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert Image.open(a).info["parameters"] == Image.open(b).info["parameters"]
    if "pad_conds_v0" in switches:  # the switch acts: without it the long negative runs whole
        r = cli("generate", "a [red:blue:0.5] circle, white background", "--negative", negative, "--steps", "4",
                "--sampler", "DDIM", "--seed", "5", "--size", "64x64", *[f for f in flags if f != "--pad-conds-v0"],
                "--out", tmp_path / "unpadded", "--quiet")
        c = next((tmp_path / "unpadded").glob("*.png"))
        assert not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(c)))


def test_and_parts_of_other_lengths_are_padded_with_their_last_vector(monkeypatch):
    """A1111's reconstruct_multicond_batch: every AND part made as long as the longest, its last vector repeated."""
    import torch

    import sd1kit.pipeline.generate as G
    from sd1kit.pipeline.model import load_model

    seen = []
    real = G.CFGDenoiser

    def spy(*args, **kw):
        cfg = real(*args, **kw)
        seen.append(cfg.conds_at(0)[0])
        return cfg
    monkeypatch.setattr(G, "CFGDenoiser", spy)
    long = ", ".join(["red circle", "blue background", "white square"] * 12)
    G.generate(GenerationRequest(prompt=f"red circle AND {long}", steps=1, seed=1), load_model())
    (short, _), (longer, _) = seen[0]
    assert short.shape == longer.shape and longer.shape[1] > 77
    assert torch.equal(short[:, 77:], short[:, 76:77].expand(-1, short.shape[1] - 77, -1))


def test_the_api_dry_run_returns_the_plan_and_runs_nothing():
    from fastapi.testclient import TestClient

    from sd1kit.server.app import ServerConfig, create_app

    with TestClient(create_app(ServerConfig())) as client:
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "red circle", "steps": 3, "seed": 9, "cfg_scale": 5,
                                                   "override_settings": {"CLIP_stop_at_last_layers": 2},
                                                   "sd1kit_dry_run": True})
        assert r.status_code == 200, r.text
        plan = r.json()["plan"]
        assert plan["settings"]["steps"] == {"value": 3, "source": "api"}
        assert plan["settings"]["clip_skip"] == {"value": 2, "source": "api"}
        # no width/height sent: the model's own resolution, as on every surface (the demo model's 64x64)
        assert plan["settings"]["size"]["source"] == "metadata:modelspec.resolution"
        assert plan["passes"][0]["size"] == [64, 64]
        assert "Clip skip: 2" in plan["infotext"] and "Seed: 9" in plan["infotext"]
        assert client.get("/sdapi/v1/progress").json()["state"]["sampling_step"] == 0


# --- what a review of the plan found: each a regression test ---

def _dry(client, **payload):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "sd1kit_dry_run": True, **payload})
    assert r.status_code == 200, r.text
    return r.json()["plan"]


def test_api_fields_as_a1111_clients_send_them():
    from fastapi.testclient import TestClient

    from sd1kit.server.app import ServerConfig, create_app

    with TestClient(create_app(ServerConfig())) as client:
        plan = _dry(client, enable_hr=True, hr_prompt="", hr_negative_prompt="", hr_sampler_name="",
                    hr_scheduler="", scheduler="", width=64, height=64)
        first, hires = plan["passes"]
        assert hires["prompt_schedule"][0]["text"] == "x" and hires["sampler"] == first["sampler"]
        assert "Hires prompt" not in plan["infotext"] and "Schedule type: Automatic" in plan["infotext"]
        assert _dry(client, width=128)["passes"][0]["size"] == [128, 512]
        assert _dry(client, sampler_name="", sampler_index="DDIM")["passes"][0]["sampler"] == "DDIM"
        assert _dry(client, seed=5.0, steps=3.0, inpainting_fill=1.0)["settings"]["seed"]["value"] == 5
        plan = _dry(client, hr_scale=0)  # hires fields without enable_hr are ignored, as A1111 does
        assert len(plan["passes"]) == 1
        plan = _dry(client, override_settings={"sd_noise_schedule": "Zero Terminal SNR", "s_noise": 0.9})
        assert plan["settings"]["zero_terminal_snr"] == {"value": True, "source": "api"}
        assert plan["settings"]["s_noise"]["value"] == 0.9


def test_a_picture_says_what_it_left_out(catalog_v_model, cli, tmp_path):
    """A1111 writes Clip skip only above 1: regenerating an A1111 picture on a clip-skip-2 model keeps 1."""
    import json

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "1girl\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, "
                                "Model: mine, Version: v1.6.0")
    Image.new("RGB", (64, 64)).save(tmp_path / "p.png", pnginfo=info)
    plan = json.loads(cli("generate", "--from", tmp_path / "p.png", "--model", catalog_v_model, "--dry-run").out)
    assert plan["settings"]["clip_skip"]["value"] == 1 and plan["settings"]["clip_skip"]["source"].startswith("pic")
    assert plan["settings"]["zero_terminal_snr"]["value"] is False  # A1111 writes Noise Schedule when on
    assert plan["prediction"] == "v"  # what the picture cannot say still comes from the catalog
    # an old picture: downcast alphas_cumprod; the catalog's zero terminal SNR would make it impossible
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "1girl\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, "
                                "Model: mine, Version: v1.5.1")
    Image.new("RGB", (64, 64)).save(tmp_path / "old.png", pnginfo=info)
    r = cli("generate", "--from", tmp_path / "old.png", "--model", catalog_v_model, "--dry-run")
    assert r.code == 0, r.err
    assert json.loads(r.out)["settings"]["downcast_alphas_cumprod"]["value"] is True
    r = cli("generate", "--from", tmp_path / "old.png", "--model", catalog_v_model, "--no-downcast-alphas-cumprod",
            "--dry-run")
    assert json.loads(r.out)["settings"]["downcast_alphas_cumprod"] == {"value": False, "source": "cli"}


def test_library_values_equal_to_the_usual_default_are_still_explicit(catalog_v_model):
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.plan import plan

    model = load_model(catalog_v_model)
    assert plan(GenerationRequest(prompt="x"), model).request.clip_skip == 2
    p = plan(GenerationRequest(prompt="x", clip_skip=1, width=512, height=512, seed=None), model)
    assert (p.request.clip_skip, p.first.size) == (1, (512, 512))
    assert p.settings["clip_skip"].source == "request"


def test_an_idle_modifier_is_not_named_even_by_its_table_row(combo, monkeypatch):
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.modifiers import DeepCacheModifier

    monkeypatch.setattr(DeepCacheModifier, "ran", lambda self: False)
    result = generate(_combo_request(combo, without=("controlnet", "lora", "token_merging")), combo["model"])
    assert "DeepCache" not in result.images[0].infotext


def test_ddim_eta_is_written_and_read_as_a1111s_eta_ddim():
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.plan import plan

    text = plan(GenerationRequest(prompt="x", sampler="DDIM", eta=0.3, steps=2), load_model()).infotext(1, 1)
    assert "Eta DDIM: 0.3" in text
    assert options_from_infotext(parse_infotext(text))["eta"] == 0.3
