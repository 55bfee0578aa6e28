"""The demo world, the content checker, the demo training script and the v-prediction probe."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from sd1kit.demo.checker import analyse, parse_prompt, score
from sd1kit.demo.world import all_scenes, draw, held_out_scenes, sample, training_scenes


def test_world_is_deterministic_and_the_checker_reads_it_exactly():
    assert set(training_scenes()).isdisjoint(held_out_scenes())
    assert len(held_out_scenes()) > 50 and all(s.colour != s.background for s in all_scenes())
    a = sample(np.random.default_rng(5), training_scenes())
    b = sample(np.random.default_rng(5), training_scenes())
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    for scene in all_scenes()[::7]:
        result = score(Image.fromarray(draw(scene, (2, -3, 1))), scene.caption())
        assert result.accuracy == 1.0, (scene, result.found)
    assert parse_prompt("red circle, blue background, top left") == {
        "colour": "red", "shape": "circle", "background": "blue", "position": "top left"}
    assert analyse(Image.new("RGB", (64, 64), (40, 70, 220))) == {"background": "blue"}


def test_checker_says_when_the_picture_shows_something_else():
    from sd1kit.demo.world import Scene

    picture = Image.fromarray(draw(Scene("green", "triangle", "white", "top right")))
    found = score(picture, "red circle, blue background, bottom left")
    assert found.accuracy == 0.0 and found.found["shape"] == "triangle"


class _IdealDenoiser(torch.nn.Module):
    """The exact denoiser of a one-picture world: knowing x0, it returns the true epsilon (or v) of any x_t. What a
    perfectly trained epsilon or v model returns on the probe's own picture."""

    def __init__(self, x0: torch.Tensor, prediction: str, ztsnr: bool = False):
        super().__init__()
        from sd1kit.sampling.schedules import sd1_alphas_cumprod

        self.x0, self.prediction = x0, prediction
        self.alphas = sd1_alphas_cumprod(zero_terminal_snr=ztsnr).double()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(in_channels=4)

    def forward(self, x, t, encoder_hidden_states=None):
        a, s = self.alphas[t].sqrt().float(), (1 - self.alphas[t]).sqrt().float()
        eps = (x - a * self.x0) / s if s > 0 else torch.zeros_like(x)
        if self.prediction == "v":
            if s == 0:
                return SimpleNamespace(sample=-self.x0)
            return SimpleNamespace(sample=a * eps - s * self.x0)
        return SimpleNamespace(sample=eps)


def test_probe_reads_the_prediction_type_from_what_the_unet_returns():
    from sd1kit.dev.tiny import tiny_modules
    from sd1kit.models.probe import _probe_picture, probe_prediction

    modules = tiny_modules(seed=0)
    with torch.no_grad():
        x0 = modules.vae.encode(_probe_picture(128)).latent_dist.mean * modules.vae.config.scaling_factor
    empty = lambda: torch.zeros(1, 77, 32)  # noqa: E731
    for prediction, ztsnr in (("epsilon", False), ("v", False), ("v", True)):
        modules.unet = _IdealDenoiser(x0, prediction, ztsnr)
        verdict = probe_prediction(modules, empty)
        assert verdict.prediction == prediction and verdict.confidence > 0.9, verdict
        if prediction == "v":
            assert verdict.zero_terminal_snr is ztsnr, verdict


def test_probe_says_unknown_for_random_weights_and_loading_falls_back_to_epsilon(cli, tiny_models):
    r = cli("inspect", "--probe", "--json", tiny_models["sd15"])
    assert r.code == 0, r.err
    probe = json.loads(r.out)[0]["probe"]
    assert probe["prediction"] == "unknown" and probe["confidence"] == 0.0 and "no clear answer" in probe["reason"]
    from sd1kit.pipeline.model import load_model

    assert load_model(tiny_models["sd15"]).prediction == "epsilon"
    r = cli("inspect", "--probe", tiny_models["sd15"])
    assert "probe       unknown" in r.out


def test_training_script_writes_loadable_checkpoints_that_generate(tmp_path):
    """The full plan runs for about half an hour; a sliver of it shows the script end to end: two LDM-layout fp16
    checkpoints with ModelSpec metadata that sd1kit loads at their native size."""
    from sd1kit.demo.train import Plan, train_demo
    from sd1kit.formats.safetensors_io import read_header
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model, native_size
    from sd1kit.pipeline.request import GenerationRequest

    eps, v, lora = train_demo(tmp_path, Plan(examples=64, vae_steps=2, eps_steps=2, v_steps=2, lora_steps=2,
                                             unet_batch=4, vae_batch=2))
    header = read_header(v)
    assert header.metadata["modelspec.resolution"] == "64x64" and native_size(v) == (64, 64)
    assert {info.dtype for info in header.tensors.values()} == {"F16"}
    result = generate(GenerationRequest(prompt="red circle", width=64, height=64, steps=2), load_model(eps))
    assert result.images[0].image.size == (64, 64) and lora.stat().st_size < 200_000
