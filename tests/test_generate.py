"""End to end on tiny SD1-topology models: txt2img, img2img, batches, seeds, v-prediction, PNG + infotext, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sd1kit.pipeline import images
from sd1kit.pipeline.generate import generate
from sd1kit.pipeline.model import load_model
from sd1kit.pipeline.request import GenerationRequest

BASE = GenerationRequest(prompt="masterpiece, (1girl:1.2), [cat:dog:0.5]", negative_prompt="lowres",
                         steps=4, width=64, height=64, seed=1234)


@pytest.fixture(scope="module")
def sd15(tiny_models):
    return load_model(tiny_models["sd15"])


def _pixels(result):
    return [np.asarray(i.image) for i in result.images]


def test_txt2img_is_reproducible_and_names_the_model(sd15, tiny_models):
    a, b = generate(BASE, sd15), generate(BASE, sd15)
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(a), _pixels(b)))
    info = a.images[0].infotext
    import hashlib

    short = hashlib.sha256(tiny_models["sd15"].read_bytes()).hexdigest()[:10]
    assert f"Model hash: {short}" in info and "Model: sd15-pruned-fp16" in info
    assert info.startswith(BASE.prompt + "\nNegative prompt: lowres\nSteps: 4, Sampler: Euler a")


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ SDE", "DPM++ 2M Karras", "DDIM"])
def test_image_i_of_a_batch_equals_its_seed_alone(sd15, sampler):
    request = BASE.with_(sampler=sampler, batch_size=3, ensd=31337)
    batch = _pixels(generate(request, sd15))
    for i in range(3):
        alone = _pixels(generate(request.with_(batch_size=1, seed=BASE.seed + i), sd15))[0]
        assert np.array_equal(batch[i], alone)  # exact batches: the UNet and the VAE run each picture alone


def test_batch_count_continues_the_seeds(sd15):
    result = generate(BASE.with_(batch_count=2, batch_size=2), sd15)
    assert [i.seed for i in result.images] == [1234, 1235, 1236, 1237]
    assert "Seed: 1236" in result.images[2].infotext


def test_v_prediction_model_runs_as_v(tiny_models):
    model = load_model(tiny_models["easyfluff"])
    assert model.prediction == "v"
    result = generate(BASE.with_(cfg_rescale=0.7), model)
    assert "CFG Rescale phi: 0.7" in result.images[0].infotext
    assert np.isfinite(np.asarray(result.images[0].image)).all()


def test_img2img_starts_from_the_picture(sd15, tmp_path):
    picture = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    picture.save(tmp_path / "init.png")
    seen = []
    result = generate(BASE.with_(init_image=tmp_path / "init.png", denoising_strength=0.5), sd15,
                      callback=lambda i, sigma, latent: seen.append(sigma))
    assert len(seen) == int(0.5 * 4) + 1  # A1111 runs t_enc + 1 steps
    assert "Denoising strength: 0.5" in result.images[0].infotext


@pytest.mark.parametrize("sampler, calls", [("DDIM", 4), ("PLMS", 4), ("UniPC", 5)])
def test_img2img_with_the_timestep_samplers_follows_a1111(sd15, tmp_path, sampler, calls):
    """A1111's timestep samplers in img2img: t_enc = 5 of 10 steps; DDIM and PLMS step between the 5 lowest
    timesteps (4 steps), UniPC takes 5; the picture is reproducible and masks keep the unmasked part."""
    init, mask = _init_and_mask(tmp_path)
    request = BASE.with_(sampler=sampler, steps=10, init_image=init, denoising_strength=0.5)
    seen = []
    first = generate(request, sd15, callback=lambda i, sigma, latent: seen.append(i))
    assert len(seen) == calls
    assert np.array_equal(_pixels(first)[0], _pixels(generate(request, sd15))[0])
    inpainted = np.asarray(generate(request.with_(mask_image=mask), sd15).images[0].image)
    assert np.array_equal(inpainted[:4, :4], np.asarray(Image.open(init))[:4, :4])


def test_interrupt_keeps_the_unfinished_image(sd15):
    calls = []
    result = generate(BASE.with_(batch_count=3), sd15, callback=lambda *a: calls.append(1),
                      should_stop=lambda: len(calls) >= 2)
    assert len(result.images) == 1 and result.images[0].interrupted


def test_fp16_vae_overflow_is_decoded_again_in_fp32():
    from sd1kit.dev.tiny import tiny_modules

    vae = tiny_modules(seed=0).vae
    with torch.no_grad():
        vae.decoder.conv_out.weight.mul_(1e6)  # pixels far past fp16's range (65504), fine in fp32
    vae.half()
    latents = torch.randn(1, 4, 8, 8) * 3
    pictures, retried = images.decode(vae, latents, 0.18215)
    assert retried and np.isfinite(np.asarray(pictures[0])).all()
    assert next(vae.parameters()).dtype == torch.float16  # put back as it was


def test_cli_generate_writes_png_with_parameters(cli, tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        r = cli("generate", "1girl, solo", "--steps", "2", "--size", "66x64", "--seed", "7", "--out", out, "--quiet")
        assert r.code == 0, r.err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["00000-7-1girl solo.png", "00001-7-1girl solo.png"]  # never overwritten
    assert "rounded down to 64x64" in r.err
    info = Image.open(out / files[0]).text["parameters"]
    assert info.startswith("1girl, solo\nSteps: 2, Sampler: Euler a") and "Size: 64x64" in info


def test_cli_generate_bad_input(cli, tmp_path):
    r = cli("generate", "x", "--sampler", "Eular a", "--steps", "1", "--size", "64x64", "--out", tmp_path)
    assert r.code != 0 and "did you mean 'Euler a'" in r.err and r.err.count("\n") == 1
    r = cli("generate", "x", "--size", "big", "--out", tmp_path)
    assert r.code != 0 and "--size" in r.err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = cli("generate", "x", "--init", bad, "--steps", "1", "--size", "64x64", "--out", tmp_path / "o")
    assert r.code != 0 and "not a readable image" in r.err and not (tmp_path / "o").exists()


def test_regenerate_from_the_picture_is_pixel_identical(cli, tmp_path, tiny_models, monkeypatch):
    import shutil

    models = tmp_path / "home" / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny_models["easyfluff"], models / "EasyFluffV10.1.safetensors")
    shutil.copy(tiny_models["easyfluff"].with_suffix(".yaml"), models / "EasyFluffV10.1.yaml")
    monkeypatch.setenv("SD1KIT_HOME", str(tmp_path / "home"))
    first, second = tmp_path / "first", tmp_path / "second"
    r = cli("generate", "1girl, [red:blue:0.5] hair, (smile:1.3) AND cat :0.5", "--negative", "lowres, text",
            "--model", models / "EasyFluffV10.1.safetensors", "--sampler", "DPM++ 2M SDE", "--schedule", "Karras",
            "--steps", "5", "--cfg", "6.5", "--cfg-rescale", "0.7", "--seed", "77", "--size", "64x64",
            "--clip-skip", "2", "--ensd", "31337", "--rng", "NV", "--subseed", "5", "--subseed-strength", "0.3",
            "--out", first, "--quiet")
    assert r.code == 0, r.err
    picture = next(first.iterdir())
    r = cli("generate", "--from", picture, "--out", second, "--quiet")
    assert r.code == 0, r.err
    again = next(second.iterdir())
    assert np.array_equal(np.asarray(Image.open(picture)), np.asarray(Image.open(again)))
    assert Image.open(picture).text == Image.open(again).text


def test_from_picture_with_a_missing_model_names_it(cli, tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "x\nSteps: 2, Sampler: Euler, Seed: 1, Size: 64x64, Model hash: 89d59c3dde, Model: animefull-final-pruned")
    Image.new("RGB", (64, 64)).save(tmp_path / "nai.png", pnginfo=info)
    monkeypatch.setenv("SD1KIT_HOME", str(tmp_path))
    r = cli("generate", "--from", tmp_path / "nai.png", "--out", tmp_path / "o")
    assert r.code != 0 and "animefull-final-pruned" in r.err and "89d59c3dde" in r.err and r.err.count("\n") == 1


def test_infotext_parse_round_trip():
    from sd1kit.metadata.infotext import create_infotext, parse_infotext

    text = create_infotext('a "quoted", prompt\nline two', "neg: x, y", {
        "Steps": 20, "Sampler": "DPM++ 2M", "CFG scale": 7.5, "Seed": 5, "Size": "512x768",
        "Lora hashes": "a: 0123456789ab, b: 89abcdef0123", "Version": "sd1kit 0.1.0"})
    fields = parse_infotext(text)
    assert fields["Prompt"] == 'a "quoted", prompt\nline two' and fields["Negative prompt"] == "neg: x, y"
    assert (fields["Size-1"], fields["Size-2"], fields["CFG scale"]) == ("512", "768", "7.5")
    assert fields["Lora hashes"] == "a: 0123456789ab, b: 89abcdef0123"
    raw = parse_infotext('p\nSteps: 20, Hashes: {"model": "abc", "lora:x": "1,2"}, Sampler: Euler, Seed: 3')
    assert raw["Hashes"] == {"model": "abc", "lora:x": "1,2"} and raw["Sampler"] == "Euler" and raw["Seed"] == "3"


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (bicubic antialiased)", "Lanczos"])
def test_hires_fix_doubles_and_reproduces(sd15, upscaler):
    request = BASE.with_(enable_hr=True, hr_upscaler=upscaler, hr_steps=3, hr_denoising_strength=0.6)
    seen = []
    result = generate(request, sd15, callback=lambda i, sigma, latent: seen.append(latent.shape[-1]))
    assert result.images[0].image.size == (128, 128)
    assert seen.count(8) == 4 and seen.count(16) == int(0.6 * 3) + 1  # first pass, then A1111's img2img steps
    info = result.images[0].infotext
    assert "Size: 64x64" in info and "Hires upscale: 2" in info and f"Hires upscaler: {upscaler}" in info
    assert "Denoising strength: 0.6" in info and "Hires steps: 3" in info
    again = generate(request, sd15)
    assert np.array_equal(np.asarray(again.images[0].image), np.asarray(result.images[0].image))


def test_hires_from_picture(cli, tmp_path, tiny_models):
    first, second = tmp_path / "a", tmp_path / "b"
    r = cli("generate", "1girl", "--model", tiny_models["sd15"], "--steps", "2", "--size", "64x64", "--seed", "3",
            "--hires-resize", "96x80", "--hires-denoise", "0.5", "--hires-prompt", "1girl, detailed",
            "--out", first, "--quiet")
    assert r.code == 0, r.err
    picture = next(first.iterdir())
    assert Image.open(picture).size == (96, 80)
    r = cli("generate", "--from", picture, "--model", tiny_models["sd15"], "--out", second, "--quiet")
    assert r.code == 0, r.err
    assert np.array_equal(np.asarray(Image.open(picture)), np.asarray(Image.open(next(second.iterdir()))))


def test_unknown_hires_upscaler(cli, tmp_path):
    r = cli("generate", "x", "--hires-upscaler", "ESRGAN_4x", "--steps", "1", "--size", "64x64", "--out", tmp_path)
    assert r.code != 0 and "'ESRGAN_4x' is not installed: put ESRGAN_4x.pth in" in r.err and r.err.count("\n") == 1
    r = cli("generate", "x", "--hires-upscaler", "latent", "--steps", "1", "--size", "64x64", "--out", tmp_path)
    assert r.code != 0 and "unknown upscaler 'latent'" in r.err


def _init_and_mask(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "init.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path / "init.png", tmp_path / "mask.png"


@pytest.mark.parametrize("layout", ["sd15", "inpainting"])
@pytest.mark.parametrize("content", ["original", "fill", "latent noise", "latent nothing"])
def test_inpainting_keeps_the_unmasked_picture(tiny_models, tmp_path, layout, content):
    model = load_model(tiny_models[layout])
    init, mask = _init_and_mask(tmp_path)
    request = BASE.with_(init_image=init, mask_image=mask, masked_content=content, denoising_strength=0.8)
    result = generate(request, model)
    out, original = np.asarray(result.images[0].image), np.asarray(Image.open(init))
    assert np.array_equal(out[:4, :4], original[:4, :4])  # far from the blurred mask: the original pixels
    assert not np.array_equal(out[28:36, 28:36], original[28:36, 28:36])  # inside: repainted
    info = result.images[0].infotext
    assert f"Masked content: {content}" in info and "Mask blur: 4" in info
    assert ("Conditional mask weight: 1" in info) == (layout == "inpainting")
    again = generate(request, model)
    assert np.array_equal(np.asarray(again.images[0].image), out)


def test_inpainting_checkpoint_runs_txt2img_and_hires(tiny_models):
    model = load_model(tiny_models["inpainting"])
    result = generate(BASE.with_(enable_hr=True, hr_steps=2), model)
    assert result.images[0].image.size == (128, 128)


def test_mask_without_init_is_a_clear_error(cli, tmp_path):
    _, mask = _init_and_mask(tmp_path)
    r = cli("generate", "x", "--mask", mask, "--steps", "1", "--size", "64x64", "--out", tmp_path / "o")
    assert r.code != 0 and "needs an init image" in r.err


def test_tiled_decode_equals_the_whole_decode(sd15):
    """The banded decode normalises each GroupNorm by its whole input's statistics (as A1111's Tiled VAE shares
    them between tiles): the same picture within 1 grey level, in bands of any height."""
    from sd1kit.pipeline import vae_bands

    latents = torch.randn(1, 4, 80, 72) * 0.5
    whole, _ = images.decode(sd15.modules.vae, latents, sd15.latent_scale)
    tiled, _ = images.decode(sd15.modules.vae, latents, sd15.latent_scale, tiled=True)
    assert whole[0].size == tiled[0].size == (576, 640)
    diff = np.abs(np.asarray(whole[0], dtype=int) - np.asarray(tiled[0], dtype=int))
    assert diff.max() <= 1 and diff.mean() < 0.01
    z = latents / sd15.latent_scale
    with torch.no_grad():
        full = sd15.modules.vae.decode(z).sample.float()
    for band in (7, 16, 1000):
        assert (vae_bands.decode(sd15.modules.vae, z, band) - full).abs().max() < 1e-4, band


def _vae_files(tmp_path, tiny_models):
    """The same other VAE (tiny, seed 1) as an A1111 .vae.pt (LDM names, loss keys) and in diffusers naming."""
    from safetensors.torch import save_file

    from sd1kit.dev.tiny import tiny_modules, tiny_state_dict
    from sd1kit.formats.keys.ldm import VAE_PREFIX

    sd = {k[len(VAE_PREFIX):]: v for k, v in tiny_state_dict(seed=1).items() if k.startswith(VAE_PREFIX)}
    torch.save({"state_dict": {**sd, "loss.logvar": torch.zeros(())}}, tmp_path / "animevae.pt")
    save_file({k: v.contiguous() for k, v in tiny_modules(seed=1).vae.state_dict().items()},
              str(tmp_path / "vae-diffusers.safetensors"))
    return tmp_path / "animevae.pt", tmp_path / "vae-diffusers.safetensors"


def test_external_vae_is_used_and_named(sd15, tmp_path, tiny_models):
    pt, diffusers_file = _vae_files(tmp_path, tiny_models)
    own = generate(BASE, sd15).images[0]
    with_pt = generate(BASE.with_(vae=str(pt)), sd15).images[0]
    with_diffusers = generate(BASE.with_(vae=str(diffusers_file)), sd15).images[0]
    assert not np.array_equal(np.asarray(own.image), np.asarray(with_pt.image))
    assert np.array_equal(np.asarray(with_pt.image), np.asarray(with_diffusers.image))
    import hashlib

    assert f"VAE hash: {hashlib.sha256(pt.read_bytes()).hexdigest()[:10]}, VAE: animevae.pt" in with_pt.infotext
    assert generate(BASE, sd15).images[0].infotext == own.infotext  # the checkpoint's own VAE is back


def test_vae_from_picture_is_found_in_the_vae_folder(cli, tmp_path, tiny_models):
    import shutil

    root = tmp_path / "models"
    (root / "VAE").mkdir(parents=True)
    pt, _ = _vae_files(tmp_path, tiny_models)
    shutil.copy(pt, root / "VAE" / "animevae.pt")
    r = cli("generate", "1girl", "--model", tiny_models["sd15"], "--vae", root / "VAE" / "animevae.pt", "--steps", "2",
            "--size", "64x64", "--seed", "9", "--out", tmp_path / "a", "--quiet")
    assert r.code == 0, r.err
    picture = next((tmp_path / "a").iterdir())
    r = cli("generate", "--from", picture, "--model", tiny_models["sd15"], "--models-dir", root, "--out",
            tmp_path / "b", "--quiet")
    assert r.code == 0, r.err
    assert np.array_equal(np.asarray(Image.open(picture)), np.asarray(Image.open(next((tmp_path / "b").iterdir()))))


def test_vae_of_another_family_is_refused(sd15, tmp_path):
    from sd1kit.dev.tiny import tiny_state_dict
    from sd1kit.errors import Sd1kitError
    from sd1kit.formats.keys.ldm import VAE_PREFIX

    sd = {k[len(VAE_PREFIX):]: v for k, v in tiny_state_dict().items() if k.startswith(VAE_PREFIX)}
    sd["decoder.conv_in.weight"] = torch.zeros(64, 16, 3, 3)  # a 16-channel latent VAE
    torch.save(sd, tmp_path / "flux_ae.pt")
    with pytest.raises(Sd1kitError, match="16-channel VAE"):
        generate(BASE.with_(vae=str(tmp_path / "flux_ae.pt")), sd15)


def test_bf16_weights_generate_finite_pictures(tiny_models):
    model = load_model(tiny_models["sd15"], dtype=torch.bfloat16)
    result = generate(BASE.with_(sampler="DPM++ 2M", init_image=None), model)
    assert result.images[0].image.size == (64, 64)
    assert next(model.modules.unet.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_jpeg_and_webp_carry_the_infotext_in_exif(cli, tmp_path, fmt):
    from sd1kit.metadata.exif import EXIF_IFD, USER_COMMENT

    r = cli("generate", "1girl, ünïcode ✨", "--steps", "1", "--size", "64x64", "--seed", "4", "--format", fmt,
            "--out", tmp_path, "--quiet")
    assert r.code == 0, r.err
    path = next(tmp_path.glob(f"*.{fmt}"))
    raw = Image.open(path).getexif().get_ifd(EXIF_IFD)[USER_COMMENT]
    assert raw[:8] == b"UNICODE\0" and raw[8:].decode("utf-16-be").startswith("1girl, ünïcode ✨\nSteps: 1")
    r = cli("generate", "--from", path, "--steps", "1", "--out", tmp_path / "again", "--quiet")
    assert r.code == 0, r.err


def test_cheap_preview():
    picture = images.preview(torch.zeros(1, 4, 8, 12))
    assert picture.size == (12, 8) and np.asarray(picture).max() == 127


def test_only_masked_works_on_the_region_and_pastes_it_back(sd15, tmp_path):
    from sd1kit.pipeline.inpaint import crop_region, expand_to_ratio

    rng = np.random.default_rng(2)
    Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).save(tmp_path / "big.png")
    mask = np.zeros((96, 128), np.uint8)
    mask[40:56, 90:110] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert crop_region(Image.fromarray(mask), 8) == (82, 32, 118, 64)
    assert expand_to_ratio((82, 32, 118, 64), 64, 64, 128, 96) == (82, 30, 118, 66)
    request = BASE.with_(init_image=tmp_path / "big.png", mask_image=tmp_path / "m.png", inpaint_full_res=True,
                         inpaint_padding=8, denoising_strength=0.9)
    result = generate(request, sd15)
    out, original = np.asarray(result.images[0].image), np.asarray(Image.open(tmp_path / "big.png"))
    assert out.shape == original.shape  # the full picture comes back, at its own size
    assert np.array_equal(out[:20, :60], original[:20, :60])
    assert not np.array_equal(out[44:52, 95:105], original[44:52, 95:105])
    assert "Inpaint area: Only masked, Masked area padding: 8" in result.images[0].infotext


def test_models_and_embeddings_from_the_a1111_folders(cli, tmp_path, tiny_models, monkeypatch):
    import hashlib
    import shutil

    home = tmp_path / "home"
    (home / "models" / "Stable-diffusion").mkdir(parents=True)
    (home / "embeddings").mkdir()
    shutil.copy(tiny_models["sd15"], home / "models" / "Stable-diffusion" / "anything-v3.safetensors")
    torch.save({"string_to_param": {"*": torch.randn(3, 32)}}, home / "embeddings" / "easynegative.pt")
    monkeypatch.setenv("SD1KIT_HOME", str(home))
    short = hashlib.sha256(tiny_models["sd15"].read_bytes()).hexdigest()[:10]
    for model_arg in ("anything-v3", short):
        r = cli("generate", "1girl", "--negative", "easynegative", "--model", model_arg, "--steps", "1",
                "--size", "64x64", "--out", tmp_path / model_arg, "--quiet")
        assert r.code == 0, r.err
        info = Image.open(next((tmp_path / model_arg).iterdir())).text["parameters"]
        ti = hashlib.sha256((home / "embeddings" / "easynegative.pt").read_bytes()).hexdigest()[:12]
        assert f"Model hash: {short}, Model: anything-v3" in info and f'TI hashes: "easynegative: {ti}"' in info
    r = cli("generate", "x", "--model", "nonexistent-model", "--steps", "1", "--size", "64x64", "--out", tmp_path)
    assert r.code != 0 and "'nonexistent-model'" in r.err and r.err.count("\n") == 1


def _regenerates_identically(cli, tmp_path, *options) -> None:
    """`generate` with the options, then `generate --from` its picture: the same pixels."""
    r = cli("generate", "x", *options, "--size", "64x64", "--out", tmp_path / "o", "--quiet")
    assert r.code == 0, r.err
    first = next((tmp_path / "o").glob("*.png"))
    r = cli("generate", "--from", first, "--out", tmp_path / "again", "--quiet")
    assert r.code == 0, r.err
    again = next((tmp_path / "again").glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "DDIM"])
def test_exact_mode_bf16_stays_close_to_fp32(sampler):
    """bf16 weights and compute (what `--dtype auto` picks on CPUs with bf16 dot products): the same seed gives a
    picture within a mean of 2.5 and a 99th percentile of 10 grey levels of the fp32 one (tiny model, 12 steps)."""
    from sd1kit.pipeline.device import pick_dtype

    request = BASE.with_(sampler=sampler, steps=12, seed=3)
    fp32 = np.asarray(generate(request, load_model(None, dtype=torch.float32)).images[0].image).astype(float)
    bf16 = np.asarray(generate(request, load_model(None, dtype=torch.bfloat16)).images[0].image).astype(float)
    diff = np.abs(fp32 - bf16)
    assert diff.mean() <= 2.5 and np.percentile(diff, 99) <= 10
    assert pick_dtype("fp32", "cpu") == torch.float32 and pick_dtype("auto", "cuda") == torch.float16


def test_taesd_fast_decoder_is_recorded_and_restored(cli, tmp_path, monkeypatch):
    """The TAESD decoder (fast mode) from madebyollin's layout and from diffusers' gives the same picture, writes
    `VAE Decoder: TAESD` into the infotext, and --from finds it again in models/VAE-taesd."""
    from sd1kit.dev.tiny import write_tiny_taesd

    original = write_tiny_taesd(tmp_path / "taesd_decoder.pth", "original")
    diffusers = write_tiny_taesd(tmp_path / "taesd-diffusers.safetensors", "diffusers")
    a = generate(BASE.with_(vae_decoder="TAESD", taesd=str(original)), load_model(None))
    b = generate(BASE.with_(vae_decoder="TAESD", taesd=str(diffusers)), load_model(None))
    assert np.array_equal(_pixels(a)[0], _pixels(b)[0]) and a.images[0].image.size == (64, 64)
    assert "VAE Decoder: TAESD" in a.images[0].infotext
    assert not np.array_equal(_pixels(a)[0], _pixels(generate(BASE, load_model(None)))[0])
    home = tmp_path / "home"
    (home / "models" / "VAE-taesd").mkdir(parents=True)
    original.rename(home / "models" / "VAE-taesd" / "taesd_decoder.pth")
    monkeypatch.setenv("SD1KIT_HOME", str(home))
    _regenerates_identically(cli, tmp_path, "--vae-decoder", "TAESD", "--steps", "2", "--seed", "9")
    monkeypatch.setenv("SD1KIT_HOME", str(tmp_path / "nowhere"))
    r = cli("generate", "x", "--vae-decoder", "TAESD", "--steps", "1", "--size", "64x64", "--out", tmp_path / "n")
    assert r.code == 2 and "no TAESD decoder weights" in r.err


def test_deepcache_shallow_branch_and_infotext(cli, tmp_path):
    """On the same input the shallow branch over the cached deep features gives exactly the whole UNet's output;
    `--deepcache N` is recorded and restored; N = 1 is exact mode."""
    from sd1kit.pipeline.deepcache import DeepCacheUNet

    unet = load_model(None).modules.unet
    g = torch.Generator().manual_seed(0)
    x, ctx, t = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g), torch.tensor([400, 400])
    cached = DeepCacheUNet(unet, 3)
    with torch.no_grad():
        whole = cached(x, t, encoder_hidden_states=ctx).sample
        shallow = cached(x, t, encoder_hidden_states=ctx).sample
        direct = unet(x, t, encoder_hidden_states=ctx).sample
    assert (cached.full_calls, cached.shallow_calls) == (1, 1)
    torch.testing.assert_close(shallow, direct, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(whole, direct, rtol=0, atol=0)
    exact = _pixels(generate(BASE, load_model(None)))[0]
    assert np.array_equal(_pixels(generate(BASE.with_(deepcache=1), load_model(None)))[0], exact)
    fast = generate(BASE.with_(steps=9, deepcache=3), load_model(None))
    assert "DeepCache: 3" in fast.images[0].infotext
    _regenerates_identically(cli, tmp_path, "--deepcache", "3", "--steps", "6", "--seed", "2")


def test_token_merging_is_recorded_restored_and_removed(cli, tmp_path):
    plain = _pixels(generate(BASE, load_model(None)))[0]
    merged = generate(BASE.with_(token_merging=0.5), load_model(None))
    assert "Token merging ratio: 0.5" in merged.images[0].infotext
    assert not np.array_equal(_pixels(merged)[0], plain)
    assert np.array_equal(_pixels(generate(BASE, load_model(None)))[0], plain)  # the patch is gone afterwards
    _regenerates_identically(cli, tmp_path, "--token-merging", "0.5", "--steps", "2", "--seed", "4")


def test_low_memory_keeps_16_bit_weights_and_computes_in_fp32(cli, tiny_models, tmp_path):
    """--low-memory: an fp16 checkpoint stays fp16 in memory (half of fp32), each layer computed in fp32 while it
    runs: the same pixels as loading it into fp32, and recorded nowhere (nothing about the picture changes)."""
    half = tmp_path / "half.safetensors"
    assert cli("convert", tiny_models["sd15"], half, "--dtype", "fp16").code == 0
    request = BASE.with_(sampler="DPM++ 2M", steps=4)
    full = load_model(half, dtype=torch.float32)
    expected = _pixels(generate(request, full))
    low = load_model(half, dtype=torch.float32, low_memory=True)
    assert {p.dtype for p in low.modules.unet.parameters() if p.dim() > 1} == {torch.float16}
    assert np.array_equal(_pixels(generate(request, low)), expected)
    r = cli("generate", "x", "--model", half, "--low-memory", "--steps", "2", "--size", "64x64",
            "--out", tmp_path / "o", "--quiet")
    assert r.code == 0, r.err
