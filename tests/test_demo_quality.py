"""End-to-end quality on real pictures: the shipped demo models draw held-out prompts through the real pipeline
and the content checker scores what they drew. The checks fail when something that only shows in pictures is
wrong: the CFG sign, the prediction type, the prompt, a sampler, clip skip, img2img, hires fix, a LoRA.

GOOD is the accuracy a working path must reach, BROKEN the most a broken one may reach; the shipped models' own
figures on these prompts are in the README (demo section)."""

from __future__ import annotations

import json

import pytest

from sd1kit.demo import demo_model
from sd1kit.demo.quality import evaluate, held_out_prompts
from sd1kit.pipeline.request import GenerationRequest

GOOD = 0.65
BROKEN = 0.45
N = 12
BASE = GenerationRequest(width=64, height=64, steps=20, cfg_scale=7, sampler="Euler a")


@pytest.fixture(scope="module")
def eps_model():
    from sd1kit.pipeline.model import load_model

    return load_model(None)


@pytest.fixture(scope="module")
def v_model():
    from sd1kit.pipeline.model import load_model

    return load_model(demo_model("sd1kit-demo-v"))


def _accuracy(model, request=BASE, **kw) -> float:
    return evaluate(model, request, N, **kw).accuracy


def test_default_model_draws_held_out_prompts(eps_model):
    assert eps_model.name == "sd1kit-demo" and eps_model.prediction == "epsilon"
    assert _accuracy(eps_model) >= GOOD


def test_negated_cfg_fails(eps_model):
    assert _accuracy(eps_model, BASE.with_(cfg_scale=-7)) <= BROKEN


def test_replaced_prompt_fails(eps_model):
    prompts = held_out_prompts(N)
    assert _accuracy(eps_model, prompts=prompts[1:] + prompts[:1], judged=prompts) <= BROKEN


def test_v_model_is_found_by_the_probe_and_draws(v_model):
    assert (v_model.prediction, v_model.zero_terminal_snr) == ("v", True)
    found = v_model.defaults["prediction"]
    assert found.source == "probe" and "probe finds v" in found.note  # said by the plan when it is used
    assert _accuracy(v_model) >= GOOD


def test_v_model_treated_as_epsilon_fails():
    from sd1kit.pipeline.model import load_model

    wrong = load_model(demo_model("sd1kit-demo-v"), prediction="epsilon", zero_terminal_snr=False)
    assert _accuracy(wrong) <= BROKEN


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M Karras", "DPM++ SDE Karras", "Heun", "DDIM", "UniPC",
                                     "DPM2 a Karras"])
def test_every_sampler_family_draws(eps_model, sampler):
    assert _accuracy(eps_model, BASE.with_(sampler=sampler)) >= GOOD


@pytest.mark.parametrize("change", [{"clip_skip": 2}, {"deepcache": 3}, {"token_merging": 0.5},
                                    {"sampler": "DPM++ 2M Karras", "steps": 10}])
def test_clip_skip_and_fast_mode_draw(eps_model, change):
    assert _accuracy(eps_model, BASE.with_(**change)) >= GOOD


def test_emphasis_and_prompt_editing_keep_their_meaning(eps_model):
    prompts = held_out_prompts(N)
    emphasised = [f"({p.split(', ')[0]}:1.2), {', '.join(p.split(', ')[1:])}" for p in prompts]
    assert _accuracy(eps_model, prompts=emphasised, judged=prompts) >= GOOD
    # [from:to:when]: the picture follows the prompt it is switched to after the first step
    edited = [p.replace(p.split()[0], f"[green:{p.split()[0]}:1]", 1) for p in prompts]
    assert _accuracy(eps_model, prompts=edited, judged=prompts) >= GOOD


def test_hires_fix_draws_at_twice_the_size(eps_model):
    request = BASE.with_(enable_hr=True, hr_scale=2.0, hr_denoising_strength=0.5)
    quality = evaluate(eps_model, request, 6)
    assert quality.accuracy >= GOOD


def test_img2img_redraws_the_prompt_over_another_picture(eps_model, tmp_path):
    """A picture of something else, denoised at 0.8 towards each prompt: the prompt wins."""
    from PIL import Image

    from sd1kit.demo.world import Scene, draw

    init = tmp_path / "init.png"
    Image.fromarray(draw(Scene("black", "square", "white", "center"))).save(init)
    assert _accuracy(eps_model, BASE.with_(init_image=init, denoising_strength=0.8)) >= GOOD


def test_lora_changes_the_picture_at_run_time_and_baked_alike(eps_model, cli, tmp_path):
    """The demo LoRA teaches "red" to draw purple: with it red prompts come out purple, whether it is applied at
    run time (<lora:...>) or baked into the checkpoint first."""
    from sd1kit.demo import DEMO_DIR
    from sd1kit.demo.lora import LORA_NAME
    from sd1kit.pipeline.model import load_model

    prompts = ["red circle, blue background", "red square, green background", "red triangle, white background",
               "red circle, yellow background"]
    purple = [p.replace("red", "purple") for p in prompts]
    with_lora = [f"{p} <lora:{LORA_NAME}:1>" for p in prompts]
    run_time = BASE.with_(lora_dir=str(DEMO_DIR))
    assert _colour_right(eps_model, BASE, prompts, prompts) >= 0.75
    assert _colour_right(eps_model, run_time, with_lora, purple) >= 0.75
    baked = tmp_path / "baked.safetensors"
    r = cli("lora", "bake", demo_model(), f"{DEMO_DIR / LORA_NAME}.safetensors:1", "--out", baked)
    assert r.code == 0, r.err
    assert _colour_right(load_model(baked), BASE, prompts, purple) >= 0.75


def _colour_right(model, request, prompts, judged) -> float:
    scores = evaluate(model, request, len(prompts), prompts=prompts, judged=judged).scores
    return sum(s.checks["colour"] for s in scores) / len(scores)


def test_probe_identifies_both_demo_models(cli):
    r = cli("inspect", "--probe", "--json", demo_model("sd1kit-demo"), demo_model("sd1kit-demo-v"))
    assert r.code == 0, r.err
    eps, v = (entry["probe"] for entry in json.loads(r.out))
    assert eps["prediction"] == "epsilon" and eps["confidence"] > 0.5
    # zero terminal SNR: the probe cannot tell for this model (None); loading assumes it for v, as SD1 v models are
    assert v["prediction"] == "v" and v["zero_terminal_snr"] is not False and v["confidence"] > 0.4


def test_generate_draws_the_readme_prompt(cli, tmp_path):
    from PIL import Image

    from sd1kit.demo.checker import score

    r = cli("generate", "red circle, blue background", "--seed", "1", "--out", tmp_path, "--quiet")
    assert r.code == 0, r.err
    picture = Image.open(next(tmp_path.glob("*.png")))
    assert picture.size == (64, 64) and "Model: sd1kit-demo," in picture.info["parameters"]
    verdict = score(picture, "red circle, blue background")
    assert verdict.checks == {"colour": True, "shape": True, "background": True}, verdict.found


def test_main_job_draws_and_checks_its_pictures(cli, tmp_path):
    r = cli("demo", "--out", tmp_path)
    assert r.code == 0, r.err
    assert r.out.count("the content checker sees:") == 3
    assert "red circle, blue background\n" in r.out and "colour ok, shape ok, background ok" in r.out
    assert len(list(tmp_path.glob("*.png"))) == 3
