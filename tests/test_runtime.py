"""How a job computes (pipeline.runtime, pipeline.backend_choice): the fastest exact path is the default and says
so (infotext `Precision` / `Backend`, --dry-run's `runtime`); `--backend openvino` runs the real generate command
on a tiny checkpoint file within the bf16 tolerance of torch, its IR cached on disk and read back by the next
process-level load, a LoRA baked in; what OpenVINO cannot run is refused in one line, or moves `auto` to torch;
`auto` measures once per machine and reads the verdict back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline import device
from sd1kit.pipeline import runtime as rt


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(float)


def _wrote(result) -> str:
    assert result.code == 0, result.err
    return result.out.split("wrote ", 1)[1].split("\n")[0].removesuffix(" (interrupted)")


def _params(path) -> dict:
    from sd1kit.metadata.infotext import parse_infotext

    return parse_infotext(Image.open(path).info["parameters"])


# --- resolution ---

@pytest.mark.parametrize("bf16", [True, False])
def test_auto_precision_follows_the_cpu(monkeypatch, bf16):
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: bf16)
    r = rt.resolve_runtime(device="cpu")
    assert r.dtype == ("bf16" if bf16 else "fp32")
    assert r.sources["dtype"].source.startswith("auto: this CPU has")
    assert rt.resolve_runtime(device="cpu", dtype="fp32").sources["dtype"].source == "cli"


def test_a_pictures_precision_is_kept_where_this_machine_runs_it(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    kept = rt.resolve_runtime(device="cpu", picture={"Precision": "fp32"})
    assert (kept.dtype, kept.sources["dtype"].source, kept.notes) == ("fp32", "picture", ())
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    moved = rt.resolve_runtime(device="cpu", picture={"Precision": "bf16"})
    assert moved.dtype == "fp32" and len(moved.notes) == 1 and "bf16" in moved.notes[0]
    assert rt.resolve_runtime(device="cpu", dtype="bf16", picture={"Precision": "fp32"}).dtype == "bf16"


def test_runtime_refusals_are_one_line():
    pytest.importorskip("openvino")
    for kwargs in ({"backend": "openvino", "dtype": "fp16"}, {"backend": "openvino", "int8": True, "dtype": "fp16"},
                   {"backend": "metal"}, {"dtype": "fp8"}):
        with pytest.raises(Sd1kitError) as e:
            rt.resolve_runtime(device="cpu", **kwargs)
        assert "\n" not in str(e.value)


def test_auto_backend_is_torch_for_what_openvino_does_not_run():
    pytest.importorskip("openvino")
    from sd1kit.pipeline.request import GenerationRequest

    for request, what in ((GenerationRequest(deepcache=3), "DeepCache"),
                          (GenerationRequest(token_merging=0.5), "token merging"),
                          (GenerationRequest(controlnets=["x"]), "ControlNet")):
        r = rt.resolve_runtime(device="cpu", request=request)
        assert r.backend == "torch" and what in r.sources["backend"].source
    assert rt.resolve_runtime(device="cpu", request=GenerationRequest()).backend == "auto"  # decided at load
    assert rt.resolve_runtime(device="cpu", low_memory=True).backend == "auto"  # both backends have --low-memory


def test_the_default_path_is_said_in_the_infotext_and_the_plan(cli, tiny_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = cli("generate", "a cat", "--model", tiny_models["sd15"], "--steps", "2", "--dry-run").json()
    expected = "bf16" if rt.cpu_has_bf16() else "fp32"
    assert plan["runtime"]["dtype"]["value"] == expected
    assert plan["runtime"]["backend"]["value"] == "torch"  # a tiny model: auto stays on torch
    assert f"Precision: {expected}" in plan["infotext"] and "Backend:" not in plan["infotext"]
    picture = _wrote(cli("generate", "a cat", "--model", tiny_models["sd15"], "--steps", "2", "--seed", "1",
                         "--dtype", "fp32"))
    assert _params(picture)["Precision"] == "fp32"
    again = cli("generate", "--from", picture, "--model", tiny_models["sd15"], "--dry-run").json()
    assert again["runtime"]["dtype"] == {"value": "fp32", "source": "picture"}


# --- the OpenVINO backend through the real command ---

@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory):
    pytest.importorskip("openvino")
    return tmp_path_factory.mktemp("ov-cache")


def test_openvino_generates_within_the_bf16_tolerance_and_caches(cli, tiny_models, tmp_path, monkeypatch, ov_cache):
    from sd1kit.pipeline import model as model_mod
    from sd1kit.pipeline import openvino_backend as ovb

    monkeypatch.setenv("SD1KIT_CACHE_DIR", str(ov_cache))
    monkeypatch.chdir(tmp_path)
    args = ("generate", "1girl, smile", "--model", tiny_models["sd15"], "--steps", "4", "--seed", "3",
            "--sampler", "Euler a", "--dtype", "fp32")
    torch_pic = _wrote(cli(*args, "--backend", "torch", "--out", "torch"))
    conversions = ovb.STATS["conversions"]
    ov_pic = _wrote(cli(*args, "--backend", "openvino", "--out", "ov"))
    assert ovb.STATS["conversions"] > conversions  # converted once ...
    params = _params(ov_pic)
    assert params["Backend"] == "OpenVINO" and params["Precision"] == "fp32"
    assert {k: v for k, v in params.items() if k != "Backend"} == _params(torch_pic)  # otherwise the same infotext
    assert np.abs(_pixels(ov_pic) - _pixels(torch_pic)).max() <= 2  # f32: to rounding
    model_mod._CACHE.clear()  # a new process: the IR is read from disk
    conversions, hits = ovb.STATS["conversions"], ovb.STATS["cache_hits"]
    again = _wrote(cli("generate", "--from", ov_pic, "--model", tiny_models["sd15"], "--out", "again"))
    assert ovb.STATS["conversions"] == conversions and ovb.STATS["cache_hits"] > hits
    assert np.array_equal(_pixels(again), _pixels(ov_pic))  # --from takes the picture's backend and precision


def test_openvino_bakes_a_lora_and_refuses_controlnet(cli, copy_model, tmp_path, monkeypatch, ov_cache):
    from sd1kit.adapters.live import live_shapes
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.pipeline.model import load_model

    monkeypatch.setenv("SD1KIT_CACHE_DIR", str(ov_cache))
    monkeypatch.chdir(tmp_path)
    ckpt = copy_model("sd15")
    (tmp_path / "Lora").mkdir()
    write_synthetic_adapter(tmp_path / "Lora" / "style.safetensors", live_shapes(load_model(ckpt).modules), rank=4,
                            seed=1)
    base = ("generate", "--model", ckpt, "--steps", "3", "--seed", "2", "--dtype", "fp32", "--lora-dir",
            tmp_path / "Lora")
    pics = {}
    for backend in ("torch", "openvino"):
        for prompt in ("a cat", "a cat <lora:style:1>"):
            pics[backend, prompt] = _pixels(_wrote(cli(*base, prompt, "--backend", backend, "--out", backend)))
    for prompt in ("a cat", "a cat <lora:style:1>"):
        assert np.abs(pics["openvino", prompt] - pics["torch", prompt]).max() <= 2, prompt
    assert np.abs(pics["openvino", "a cat"] - pics["openvino", "a cat <lora:style:1>"]).max() > 2  # it acted
    from sd1kit.dev.controlnet import write_tiny_controlnet

    Image.new("RGB", (64, 64), "white").save(tmp_path / "control.png")
    control = write_tiny_controlnet(tmp_path / "cn.safetensors", "ldm")
    refused = cli(*base, "a cat", "--backend", "openvino", "--controlnet", control, "--control-image",
                  tmp_path / "control.png")
    assert refused.code != 0 and "ControlNet" in refused.err and len(refused.err.strip().splitlines()) == 1


def test_auto_measures_once_and_reads_the_verdict_back(monkeypatch, tmp_path, tiny_models):
    pytest.importorskip("openvino")
    from sd1kit.models.build import load_modules
    from sd1kit.pipeline import backend_choice
    from sd1kit.pipeline.model import load_model, place_modules
    from sd1kit.report import inspect_path

    monkeypatch.setenv("SD1KIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(backend_choice, "is_full_size", lambda config: True)  # the tiny model stands in
    measured = []
    real = backend_choice.measure
    monkeypatch.setattr(backend_choice, "measure", lambda *a: measured.append(1) or real(*a))
    raw = load_modules(inspect_path(tiny_models["sd15"]).source.load_state_dict())
    import torch

    place = lambda m: place_modules(m, torch.device("cpu"), torch.float32)  # noqa: E731
    first = backend_choice.choose(raw, place, "fp32")
    assert first.value in ("torch", "openvino") and first.source.startswith("auto: measured")
    assert backend_choice.choose(raw, place, "fp32") == first and measured == [1]  # cached
    assert (tmp_path / "cache" / "backend-choice.json").is_file()
    loaded = load_model(tiny_models["sd15"], runtime=rt.resolve_runtime(device="cpu", dtype="fp32"))
    assert loaded.runtime.backend == first.value and measured == [1]


# --- memory: refused up front, in one line with the numbers; the decode goes to bands where the whole won't fit ---

def test_a_job_that_cannot_fit_is_refused_before_any_work(cli, tiny_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = cli("generate", "a cat", "--model", tiny_models["sd15"], "--size", "512x512", "--dry-run").json()
    assert 0 < plan["memory"]["job_gib"] < plan["memory"]["free_gib"]
    monkeypatch.setenv("SD1KIT_MEMORY_AVAILABLE", str(plan["memory"]["job_gib"] / 4))
    steps = []
    from sd1kit.pipeline import generate as gen

    real = gen._sample
    monkeypatch.setattr(gen, "_sample", lambda *a: steps.append(1) or real(*a))
    refused = cli("generate", "a cat", "--model", tiny_models["sd15"], "--size", "512x512", "--steps", "2")
    assert refused.code != 0 and steps == [] and not list(tmp_path.rglob("*.png"))
    line = refused.err.strip().splitlines()[-1]
    assert "512x512" in line and "GiB free" in line and len([ln for ln in refused.err.splitlines()
                                                            if ln.startswith("sd1kit:")]) == 1


def test_the_decode_goes_to_bands_when_the_whole_would_not_fit(monkeypatch):
    import torch

    from sd1kit.pipeline import images, memory, vae_bands
    from sd1kit.pipeline.model import random_tiny_model

    vae = random_tiny_model().modules.vae
    z = torch.zeros(1, 4, 32, 32)
    assert images._decoder(vae, z, tiled=False) is images._decode_full
    whole = memory.decode_bytes((256, 256), "fp32", False) + memory.SLACK
    monkeypatch.setenv("SD1KIT_MEMORY_AVAILABLE", str(whole / memory.GIB / 2))
    assert images._decoder(vae, z, tiled=False) is vae_bands.decode


def test_int8_weights_run_are_recorded_and_cached(cli, tiny_models, tmp_path, monkeypatch, ov_cache):
    pytest.importorskip("nncf")
    from sd1kit.pipeline import model as model_mod
    from sd1kit.pipeline import openvino_backend as ovb

    monkeypatch.setenv("SD1KIT_CACHE_DIR", str(ov_cache))
    monkeypatch.chdir(tmp_path)
    args = ("generate", "1girl", "--model", tiny_models["sd15"], "--steps", "3", "--seed", "4", "--dtype", "fp32",
            "--backend", "openvino")
    plain = _wrote(cli(*args, "--out", "plain"))
    compressions = ovb.STATS["compressions"]
    small = _wrote(cli(*args, "--int8", "--out", "int8"))
    assert ovb.STATS["compressions"] - compressions == 2  # the UNet and the text encoder, once
    params = _params(small)
    assert params["Precision"] == "fp32 int8 weights" and params["Backend"] == "OpenVINO"
    d = np.abs(_pixels(small) - _pixels(plain))
    assert d.mean() <= 8, d.mean()  # int8 weights: close, not exact (fast mode)
    model_mod._CACHE.clear()
    again = _wrote(cli("generate", "--from", small, "--model", tiny_models["sd15"], "--out", "again"))
    assert ovb.STATS["compressions"] - compressions == 2  # read from the cache
    assert np.array_equal(_pixels(again), _pixels(small))  # --from takes int8 back
