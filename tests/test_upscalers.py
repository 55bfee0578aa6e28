"""Model upscalers (sd1kit.upscalers): files built from spandrel's own architectures with random weights (dev/),
found and named as A1111 names them, run as A1111's Upscaler.upscale runs them, tiled as A1111 tiles them; hires fix,
Extras (`sd1kit upscale`, `/sdapi/v1/extra-single-image`) and `--from` with them."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from sd1kit.dev import upscalers as factory
from sd1kit.errors import Sd1kitError
from sd1kit.upscalers import find_upscaler, installed_upscalers, load_upscaler, upscale_with
from sd1kit.upscalers.tiling import grid_upscale, run_model, split_grid, tensor_upscale

ANIME6B = "R-ESRGAN 4x+ Anime6B"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("upscalers") / "models"
    factory.write_esrgan(root / "ESRGAN" / "4x-Tiny.pth")
    factory.write_anime6b(root / "RealESRGAN" / "RealESRGAN_x4plus_anime_6B.pth", num_filters=16)
    factory.write_compact(root / "RealESRGAN" / "realesr-animevideov3.pth")
    factory.write_swinir(root / "SwinIR" / "SwinIR_4x.pth")
    factory.write_dat(root / "DAT" / "DAT_x2.pth")
    factory.write_esrgan(root / "ESRGAN" / "sub" / "2x-Flat.safetensors", scale=2, seed=3)
    return root


def picture(w: int = 160, h: int = 120, seed: int = 0) -> Image.Image:
    """Gradients with noise: structure everywhere, so seams and misplaced tiles show."""
    rng = np.random.default_rng(seed)
    x, y = np.linspace(0, 255, w), np.linspace(0, 255, h)
    base = np.stack([np.add.outer(y, x) / 2, np.add.outer(y, 255 - x) / 2, np.outer(np.ones(h), x)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def a1111_tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """modules/images.py split_grid, re-stated: ceil((size - overlap) / (tile - overlap)) tiles spread evenly, the
    last flush with the edge."""
    count = math.ceil((size - overlap) / (tile - overlap))
    dx = (size - tile) / (count - 1) if count > 1 else 0
    return [size - tile if int(i * dx) + tile >= size else int(i * dx) for i in range(count)]


def away_from_seams(w: int, h: int, tile: int, overlap: int, factor: int, margin: int) -> np.ndarray:
    keep = np.ones((h * factor, w * factor), bool)
    for size, axis in ((w, 1), (h, 0)):
        for start in a1111_tile_starts(size, tile, overlap):
            for edge in (start, start + tile):
                lo, hi = max(edge - margin, 0) * factor, min(edge + margin, size) * factor
                if axis:
                    keep[:, lo:hi] = False
                else:
                    keep[lo:hi, :] = False
    return keep


def test_names_folders_and_listing_as_a1111(models):
    listed = {u.name: u for u in installed_upscalers(models)}
    assert set(listed) == {"4x-Tiny", "2x-Flat", ANIME6B, "R-ESRGAN AnimeVideo", "SwinIR_4x", "DAT x2"}
    assert listed[ANIME6B].folder == "RealESRGAN" and listed["2x-Flat"].folder == "ESRGAN"
    assert find_upscaler("SwinIR 4x", models).path == listed["SwinIR_4x"].path  # the built-in name finds it too
    assert find_upscaler("RealESRGAN_x4plus_anime_6B", models).path == listed[ANIME6B].path
    with pytest.raises(Sd1kitError) as e:
        find_upscaler("R-ESRGAN 4x+", models)
    assert str(e.value).count("\n") == 0 and "RealESRGAN_x4plus.pth" in str(e.value)
    assert str(models / "RealESRGAN") in str(e.value)
    with pytest.raises(Sd1kitError) as e:
        find_upscaler("4x-UltraSharp", models)
    assert "4x-UltraSharp.pth" in str(e.value) and str(models / "ESRGAN") in str(e.value)
    for bad in ("../4x-Tiny", "/etc/passwd", ""):
        with pytest.raises(Sd1kitError):
            find_upscaler(bad, models)


@pytest.mark.parametrize("name, architecture, scale", [
    ("4x-Tiny", "ESRGAN", 4), (ANIME6B, "ESRGAN", 4), ("R-ESRGAN AnimeVideo", "RealESRGAN Compact", 4),
    ("SwinIR 4x", "SwinIR", 4), ("DAT x2", "DAT", 2), ("2x-Flat", "ESRGAN", 2)])
def test_spandrel_builds_each_and_it_upscales_the_picture(models, name, architecture, scale):
    model = load_upscaler(find_upscaler(name, models))
    assert model.architecture.name == architecture and model.scale == scale
    source = picture(48, 40)
    out = run_model(model, source)
    assert out.size == (48 * scale, 40 * scale)
    reference = pixels(source.resize(out.size, Image.LANCZOS))
    correlation = np.corrcoef(pixels(out).ravel(), reference.ravel())[0, 1]
    assert correlation > 0.9 and pixels(out).std() > 30  # the picture, upscaled: not flat, not noise


def test_anime6b_has_the_real_files_layout(tmp_path):
    import torch

    path = factory.write_anime6b(tmp_path / "RealESRGAN_x4plus_anime_6B.pth")
    state = torch.load(path, weights_only=True)["params_ema"]
    assert {k.split(".")[1] for k in state if k.startswith("body.")} == {str(i) for i in range(6)}
    assert state["conv_first.weight"].shape == (64, 3, 3, 3) and "conv_up2.weight" in state


def test_tile_starts_are_a1111s():
    for size in (100, 192, 193, 500, 1000):
        for tile, overlap in ((192, 8), (64, 8), (128, 32)):
            if size >= tile:
                grid = split_grid(Image.new("RGB", (size, tile)), tile, tile, overlap)
                assert [x for x, _, _ in grid.tiles[0][2]] == a1111_tile_starts(size, tile, overlap)


@pytest.mark.parametrize("name", ["4x-Tiny", ANIME6B, "DAT x2", "SwinIR 4x"])
def test_tiled_equals_untiled_away_from_seams(models, name):
    upscaler = find_upscaler(name, models)
    model = load_upscaler(upscaler)
    source = picture()
    whole = pixels(run_model(model, source))
    run = tensor_upscale if upscaler.folder == "SwinIR" else grid_upscale
    tiled = pixels(run(model, source, 64, 8))
    assert tiled.shape == whole.shape
    difference = np.abs(tiled - whole).max(-1)
    keep = away_from_seams(160, 120, 64, 8, model.scale, margin=8)
    assert keep.mean() > 0.25
    assert difference[keep].max() <= 1
    assert np.abs(tiled - whole).mean() < 1.0  # the seams themselves blend, not jump


def test_upscale_with_is_a1111s_upscaler_upscale(models):
    """dest = int(side * scale // 8 * 8); the model run until dest is reached (at most 3 times), then Lanczos."""
    source = picture(100, 60)
    four = find_upscaler("4x-Tiny", models)
    model = load_upscaler(four)
    out = upscale_with(source, four, 1.5, tile=0)
    assert out.size == (144, 88)
    assert np.array_equal(pixels(out), pixels(run_model(model, source).resize((144, 88), Image.LANCZOS)))
    two = find_upscaler("DAT x2", models)
    dat = load_upscaler(two)
    small = picture(24, 16)
    twice = run_model(dat, run_model(dat, small))
    assert np.array_equal(pixels(upscale_with(small, two, 4, tile=0)), pixels(twice))
    thrice = run_model(dat, twice)  # 16x asks for a fourth pass; A1111 stops at three and resizes
    assert np.array_equal(pixels(upscale_with(small, two, 16, tile=0)), pixels(thrice.resize((384, 256),
                                                                                             Image.LANCZOS)))
    with pytest.raises(Sd1kitError):
        upscale_with(source, four, 2, tile=4)
    with pytest.raises(Sd1kitError):
        upscale_with(source, four, 2, tile=64, overlap=64)


def test_hostile_and_wrong_files_fail_in_one_line(models, tmp_path):
    import pickle

    import torch

    folder = tmp_path / "models" / "ESRGAN"
    folder.mkdir(parents=True)
    factory.write_not_an_upscaler(folder / "tensors.pth")
    (folder / "garbage.pth").write_bytes(b"\x00not a pickle" * 100)
    (folder / "cut.safetensors").write_bytes((10 ** 9).to_bytes(8, "little") + b"{")

    class Evil:
        def __reduce__(self):
            return (exec, ("open('pwned', 'w')",))
    (folder / "evil.pth").write_bytes(pickle.dumps(Evil()))
    torch.save({"params_ema": [1, 2, 3]}, folder / "list.pth")
    for stem in ("tensors", "garbage", "cut", "evil", "list"):
        with pytest.raises(Sd1kitError) as e:
            upscale_with(picture(32, 32), find_upscaler(stem, tmp_path / "models"), 2)
        assert "\n" not in str(e.value) and stem in str(e.value), str(e.value)
    assert not (tmp_path / "pwned").exists() and not (folder.parent.parent / "pwned").exists()


def test_spandrel_imports_without_torchvision_and_beside_a_broken_one(tmp_path):
    broken = tmp_path / "site" / "torchvision"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    code = ("import sys; from sd1kit.upscalers import import_spandrel; s = import_spandrel(); "
            "print(hasattr(s, 'ModelLoader'), 'torchvision' in sys.modules)")
    for extra in ([], [str(tmp_path / "site")]):
        env_path = ":".join(extra + sys.path)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["True", "False"]


def _png(path, text: str | None = None, size=(48, 40)):
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    picture(*size).save(path, pnginfo=info)
    return path


def test_cli_upscale_writes_the_extras_picture(cli, models, tmp_path):
    infotext = "1girl\nSteps: 5, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 48x40"
    source = _png(tmp_path / "in.png", infotext)
    before = source.read_bytes()
    r = cli("upscale", source, "--upscaler", ANIME6B, "--scale", "2", "--models-dir", models, "--out", tmp_path / "o")
    assert r.code == 0, r.err
    out = next((tmp_path / "o").iterdir())
    written = Image.open(out)
    assert written.size == (96, 80) and written.text["parameters"] == infotext
    assert written.text["postprocessing"] == f"Postprocess upscale by: 2, Postprocess upscaler: {ANIME6B}"
    expected = upscale_with(Image.open(source), find_upscaler(ANIME6B, models), 2)
    assert np.array_equal(pixels(written), pixels(expected))
    assert source.read_bytes() == before
    r = cli("upscale", "--list", "--models-dir", models)
    assert ANIME6B in r.out and "RealESRGAN/RealESRGAN_x4plus_anime_6B.pth" in r.out
    r = cli("upscale", source, "--upscaler", "4x-UltraSharp", "--models-dir", models, "--out", tmp_path / "o")
    assert r.code == 2 and r.err.count("\n") == 1 and "4x-UltraSharp.pth" in r.err and "ESRGAN" in r.err


def test_hires_with_a_model_upscaler_and_from(cli, models, tiny_models, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    r = cli("generate", "1girl, smile", "--model", tiny_models["sd15"], "--models-dir", models, "--steps", "2",
            "--size", "64x64", "--seed", "8", "--hires", "--hires-upscaler", ANIME6B, "--hires-scale", "1.5",
            "--hires-steps", "2", "--out", first, "--quiet")
    assert r.code == 0, r.err
    made = next(first.iterdir())
    text = Image.open(made).text["parameters"]
    assert f"Hires upscaler: {ANIME6B}" in text and "Hires upscale: 1.5" in text
    assert Image.open(made).size == (96, 96)
    r = cli("generate", "--from", made, "--model", tiny_models["sd15"], "--models-dir", models, "--out", second,
            "--quiet")
    assert r.code == 0, r.err
    again = next(second.iterdir())
    assert np.array_equal(pixels(Image.open(made)), pixels(Image.open(again)))
    assert Image.open(again).text["parameters"] == text
    r = cli("generate", "1girl", "--model", tiny_models["sd15"], "--models-dir", models, "--steps", "2", "--size",
            "64x64", "--hires", "--hires-upscaler", "Lanczos", "--out", tmp_path / "lanczos", "--quiet")
    lanczos = next((tmp_path / "lanczos").iterdir())
    assert not np.array_equal(pixels(Image.open(lanczos).resize((96, 96))), pixels(Image.open(made)))
    elsewhere = _png(tmp_path / "theirs.png", text.replace(ANIME6B, "4x-UltraSharp"))
    r = cli("generate", "--from", elsewhere, "--model", tiny_models["sd15"], "--models-dir", models, "--out",
            tmp_path / "third", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "4x-UltraSharp.pth" in r.err and str(models / "ESRGAN") in r.err
    assert not (tmp_path / "third").exists() or not any((tmp_path / "third").iterdir())


def test_server_lists_upscales_and_runs_hires_with_them(models, tiny_models, tmp_path):
    import base64
    import io
    import json
    import shutil

    from fastapi.testclient import TestClient

    from sd1kit.server.app import ServerConfig, create_app

    root = tmp_path / "models"
    shutil.copytree(models, root)
    (root / "Stable-diffusion").mkdir()
    shutil.copy(tiny_models["sd15"], root / "Stable-diffusion" / "sd15-tiny.safetensors")
    buffer = io.BytesIO()
    picture(40, 32).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    with TestClient(create_app(ServerConfig(root, model="sd15-tiny"))) as client:
        listed = client.get("/sdapi/v1/upscalers").json()
        names = [u["name"] for u in listed]
        assert names[:3] == ["None", "Lanczos", "Nearest"] and ANIME6B in names and "4x-Tiny" in names
        six = next(u for u in listed if u["name"] == ANIME6B)
        assert six["scale"] == 4 and six["model_path"].endswith("RealESRGAN_x4plus_anime_6B.pth")
        extras = client.post("/sdapi/v1/extra-single-image", json={
            "image": encoded, "upscaler_1": ANIME6B, "upscaling_resize": 2}).json()
        missing = client.post("/sdapi/v1/extra-single-image", json={
            "image": encoded, "upscaler_1": "R-ESRGAN 4x+", "upscaling_resize": 2})
        body = {"prompt": "1girl", "steps": 2, "width": 64, "height": 64, "seed": 3, "enable_hr": True,
                "hr_scale": 1.5, "hr_upscaler": "4x-Tiny", "hr_second_pass_steps": 2, "denoising_strength": 0.5}
        hires = client.post("/sdapi/v1/txt2img", json=body).json()
        absent = client.post("/sdapi/v1/txt2img", json={**body, "hr_upscaler": "4x-UltraSharp"})
    upscaled = Image.open(io.BytesIO(base64.b64decode(extras["image"])))
    assert upscaled.size == (80, 64)
    assert np.array_equal(pixels(upscaled), pixels(upscale_with(picture(40, 32), find_upscaler(ANIME6B, models), 2)))
    assert missing.status_code in (400, 422) and "RealESRGAN_x4plus.pth" in missing.text
    assert "Hires upscaler: 4x-Tiny" in json.loads(hires["info"])["infotexts"][0]
    assert Image.open(io.BytesIO(base64.b64decode(hires["images"][0]))).size == (96, 96)
    assert absent.status_code in (400, 422) and "4x-UltraSharp" in absent.text
