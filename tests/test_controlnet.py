"""ControlNet: every file layout, equality with diffusers' ControlNetModel, guidance windows, control modes,
several units, preprocessors and resize modes, infotext round trip, and the QR workflow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sd1kit.dev.controlnet import CONTROLNET_LAYOUTS, tiny_controlnet, write_tiny_controlnet
from sd1kit.errors import Sd1kitError
from sd1kit.models.controlnet import load_controlnet
from sd1kit.pipeline.controlnet import ControlSet, ControlUnit, control_image, fit, preprocess, preprocessor_resolution

SUFFIX = {"ldm-prefixed": ".pth", "ldm": ".safetensors", "diffusers": "", "diffusers-file": ".safetensors"}


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("controlnets")
    paths = {layout: write_tiny_controlnet(folder / f"cn-{layout}{SUFFIX[layout]}", layout)
             for layout in CONTROLNET_LAYOUTS}
    paths["other"] = write_tiny_controlnet(folder / "cn-other.safetensors", "ldm", seed=5)
    rng = np.random.default_rng(0)
    img = np.zeros((96, 80, 3), np.uint8)
    img[20:70, 15:60] = 255
    img = (img * 0.8 + rng.random(img.shape) * 50).astype(np.uint8)
    Image.fromarray(img).save(folder / "control.png")
    paths["image"] = folder / "control.png"
    return paths


@pytest.fixture(scope="module")
def model():
    from sd1kit.pipeline.model import random_tiny_model

    return random_tiny_model()  # the ControlNets share its UNet topology


def _request(**kw):
    from sd1kit.pipeline.request import GenerationRequest

    return GenerationRequest(prompt="1girl", negative_prompt="lowres", steps=4, width=64, height=64, seed=7, **kw)


def _pixels(result):
    return np.asarray(result.images[0].image).astype(int)


def _residuals(net, x, t, ctx, hint):
    with torch.no_grad():
        down, mid = net(x, t, encoder_hidden_states=ctx, controlnet_cond=hint, return_dict=False)
    return [*down, mid]


def test_every_layout_loads_to_diffusers_controlnet_residuals(nets):
    reference = tiny_controlnet(0)
    g = torch.Generator().manual_seed(1)
    x, ctx, hint = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    t = torch.tensor([500, 500])
    expected = _residuals(reference, x, t, ctx, hint)
    got = {layout: _residuals(load_controlnet(nets[layout]).module, x, t, ctx, hint) for layout in CONTROLNET_LAYOUTS}
    for layout in ("ldm-prefixed", "diffusers"):  # fp32 files: exactly the reference
        assert all(torch.equal(a, b) for a, b in zip(got[layout], expected)), layout
    assert all(torch.equal(a, b) for a, b in zip(got["ldm"], got["diffusers-file"]))  # the fp16 files agree
    assert len(expected) == 13
    assert {load_controlnet(nets[k]).layout for k in CONTROLNET_LAYOUTS} == {"ldm (control_model. prefix)", "ldm",
                                                                             "diffusers"}


def test_layouts_give_identical_pictures_and_inspect_knows_them(nets, model, cli):
    pictures = {}
    for layout in CONTROLNET_LAYOUTS:
        unit = ControlUnit(str(nets[layout]), str(nets["image"]))
        pictures[layout] = _pixels(__import__("sd1kit.pipeline.generate", fromlist=["generate"]).generate(
            _request(controlnets=[unit]), model))
        info = json.loads(cli("inspect", nets[layout], "--no-hash", "--json").out)[0]
        assert info["kind"] == "controlnet" and info["family"] == "sd1"
    assert np.array_equal(pictures["ldm-prefixed"], pictures["diffusers"])
    assert np.array_equal(pictures["ldm"], pictures["diffusers-file"])


def test_guidance_window_and_zero_weight(nets, model):
    from sd1kit.pipeline.generate import generate

    plain = _pixels(generate(_request(), model))
    outside = generate(_request(controlnets=[ControlUnit(str(nets["ldm"]), str(nets["image"]), guidance_start=0.9)]),
                       model)
    assert np.array_equal(_pixels(outside), plain)  # steps at 0, .25, .5, .75: never inside [0.9, 1]
    assert all(used == [] for _, used in outside.controls.calls)
    window = generate(_request(controlnets=[ControlUnit(str(nets["ldm"]), str(nets["image"]), guidance_end=0.5)]),
                      model)
    assert [(p, u) for p, u in window.controls.calls] == [(0.0, [0]), (0.25, [0]), (0.5, [0]), (0.75, [])]
    assert not np.array_equal(_pixels(window), plain)
    zero = generate(_request(controlnets=[ControlUnit(str(nets["ldm"]), str(nets["image"]), weight=0.0)]), model)
    assert np.array_equal(_pixels(zero), plain)


def _set(units, model):
    controls = ControlSet(units, model.device, model.dtype)
    from sd1kit.sampling.registry import get_sigmas, resolve_sampler

    controls.begin_pass(get_sigmas(*resolve_sampler("Euler"), 4, model.schedule), model.schedule)
    return controls


def test_control_modes_and_several_units(nets, model):
    g = torch.Generator().manual_seed(3)
    x, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g)
    t = model.schedule.sigma_to_t(model.schedule.sigmas[-1:].float()).expand(2)
    uncond = torch.tensor([False, True])
    unit = lambda mode, path="ldm", **kw: ControlUnit(str(nets[path]), str(nets["image"]), control_mode=mode, **kw)
    balanced = _set([unit("Balanced", weight=0.8)], model).residuals(x, t, ctx, uncond)
    prompt = _set([unit("My prompt is more important", weight=0.8)], model).residuals(x, t, ctx, uncond)
    control = _set([unit("ControlNet is more important", weight=0.8)], model).residuals(x, t, ctx, uncond)
    down_b, mid_b = balanced
    for i, (b, p) in enumerate(zip(down_b + [mid_b], prompt[0] + [prompt[1]])):
        torch.testing.assert_close(p, b * 0.825 ** (12 - i))  # soft injection
    assert all(float(d[1].abs().max()) == 0 for d in control[0] + [control[1]])  # nothing on the uncond row
    torch.testing.assert_close(control[1][0], prompt[1][0])  # the cond row as with soft injection
    both = _set([unit("Balanced", weight=0.8), unit("Balanced", "other", weight=0.5)], model).residuals(x, t, ctx,
                                                                                                        uncond)
    other = _set([unit("Balanced", "other", weight=0.5)], model).residuals(x, t, ctx, uncond)
    for a, b, c in zip(both[0] + [both[1]], down_b + [mid_b], other[0] + [other[1]]):
        torch.testing.assert_close(a, b + c)
    guess = _set([unit("Balanced", weight=1.0, guess_mode=True)], model).residuals(x, t, ctx, uncond)
    plain = _set([unit("Balanced", weight=1.0)], model).residuals(x, t, ctx, uncond)
    torch.testing.assert_close(guess[0][0][0], plain[0][0][0] * 0.1)  # logspace(-1, 0, 13) on cond rows only
    assert float(guess[1][1].abs().max()) == 0


def test_controlnet_with_img2img_hires_and_inpainting(nets, model, tmp_path):
    from sd1kit.pipeline.generate import generate

    unit = ControlUnit(str(nets["ldm"]), str(nets["image"]), module="canny")
    hires = generate(_request(controlnets=[unit], enable_hr=True, hr_steps=2, hr_scale=2.0), model)
    assert hires.images[0].image.size == (128, 128)
    assert (128, 128) in hires.controls.active[0].hints  # the control image at the hires size for the second pass
    Image.fromarray((np.random.default_rng(2).random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "init.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    inpainted = generate(_request(controlnets=[unit], init_image=tmp_path / "init.png", mask_image=tmp_path / "mask.png",
                                  denoising_strength=0.6), model)
    assert np.isfinite(_pixels(inpainted)).all()


def test_preprocessors_and_resize_modes(nets):
    img = np.asarray(Image.open(nets["image"]).convert("RGB"))
    canny = preprocess(img, "canny", 100, 200)
    assert set(np.unique(canny)) <= {0, 255} and canny[..., 0].any()
    assert np.array_equal(preprocess(img, "invert", None, None), 255 - img)
    binary = preprocess(img, "binary", 0, None)
    assert set(np.unique(binary)) <= {0, 255}
    assert preprocess(img, "scribble_xdog", 32, None).shape == img.shape
    for mode in ("Just Resize", "Crop and Resize", "Resize and Fill"):
        assert fit(img, 64, 48, mode).shape == (48, 64, 3)
    unit = ControlUnit("x", None, resize_mode="Crop and Resize", pixel_perfect=True)
    assert preprocessor_resolution(unit, 80, 96, 512, 512) == round(max(512 / 96, 512 / 80) * 80)
    with pytest.raises(Sd1kitError, match="not one of"):
        ControlUnit("x", None, module="depth_midas").validate()
    with pytest.raises(Sd1kitError, match="not a readable image"):
        control_image(ControlUnit("x", str(nets["ldm"])), 64, 64)


def test_infotext_round_trip_through_generate_from(nets, cli, tiny_models, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "home" / "models" / "ControlNet"
    root.mkdir(parents=True)
    shutil.copy(nets["ldm"], root / "control_v11p_sd15_canny.safetensors")
    (tmp_path / "home" / "models" / "Stable-diffusion").mkdir()
    model = shutil.copy(tiny_models["sd15"], tmp_path / "home" / "models" / "Stable-diffusion")
    monkeypatch.setenv("SD1KIT_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    unit = ["--controlnet", "control_v11p_sd15_canny", "--control-image", nets["image"], "--control-module", "canny",
            "--control-weight", "0.7", "--control-end", "0.8", "--steps", "3", "--size", "64x64", "--seed", "5"]
    r = cli("generate", "1girl", *unit, "--out", out, "--quiet")  # the built-in demo model: another topology
    assert r.code == 2 and "control_v11p_sd15_canny" in r.err and "a ControlNet for a UNet of widths" in r.err
    r = cli("generate", "1girl", *unit, "--model", model, "--out", out, "--quiet")
    assert r.code == 0, r.err
    first = next(out.glob("*.png"))
    info = json.loads(cli("info", first, "--json").out)[0]["parameters"]
    assert info["ControlNet 0"].startswith("Module: canny, Model: control_v11p_sd15_canny [")
    assert "Weight: 0.7" in info["ControlNet 0"] and "Guidance End: 0.8" in info["ControlNet 0"]
    r = cli("generate", "--from", first, "--out", tmp_path / "again", "--quiet")
    assert r.code == 2 and "--control-image" in r.err
    r = cli("generate", "--from", first, "--control-image", nets["image"], "--out", tmp_path / "again", "--quiet")
    assert r.code == 0, r.err
    again = next((tmp_path / "again").glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def test_qr_code_and_scan_check(cli, nets, tiny_models, tmp_path):
    from sd1kit.pipeline.qr import qr_image, scan

    text = "https://example.com/sd1kit?q=1"
    code = qr_image(text, "H", 16, 4, (512, 512))
    assert scan(code) == text
    pixels = np.asarray(code)
    assert {tuple(p) for p in pixels.reshape(-1, 3)} <= {(0, 0, 0), (128, 128, 128)}  # black on #808080
    broken = pixels.copy()
    broken[96:416, 96:416] = np.random.default_rng(0).integers(0, 255, (320, 320, 3))
    assert scan(Image.fromarray(broken)) is None
    r = cli("qr", text, "--code-only", "--out", tmp_path / "code")
    assert r.code == 0 and "scans: yes" in r.out
    r = cli("qr", text, "a castle", "--controlnet", nets["ldm"], "--model", tiny_models["sd15"], "--sweep", "0.5,1.5",
            "--size", "64x64", "--steps", "2", "--out", tmp_path / "art", "--quiet")
    assert r.code == 1 and r.out.count("scans: no") == 2 and "no weight tried" in r.out  # random weights draw noise
    assert len(list((tmp_path / "art").glob("*.png"))) == 2
