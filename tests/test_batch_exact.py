"""Image i of a batch is bit for bit its seed generated alone, whatever the sampler: the CFG denoiser calls the UNet
image by image in the micro-batch each image gets alone (per_image), the VAE decodes image by image, DeepCache
keeps its deep features per image. per_image=False (one UNet call over the batch) may round apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sd1kit.pipeline.generate import generate
from sd1kit.pipeline.model import load_model
from sd1kit.pipeline.request import GenerationRequest
from sd1kit.sampling.denoisers import CFGDenoiser, Denoiser, unet_model

BASE = GenerationRequest(prompt="a red circle on a blue background", negative_prompt="lowres", steps=4, width=64,
                         height=64, seed=4242)
LONG = ", ".join(["blurry, lowres, jpeg artifacts, ugly"] * 12)  # over 75 tokens: two chunks, 154 tokens


@pytest.fixture(scope="module")
def demo():
    return load_model(None)


def _pixels(result):
    return [np.asarray(i.image) for i in result.images]


def _third_equals_its_seed_alone(model, request):
    batch = _pixels(generate(request.with_(batch_size=3), model))
    alone = _pixels(generate(request.with_(batch_size=1, seed=request.seed + 2), model))[0]
    assert np.array_equal(batch[2], alone)
    return batch


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ SDE", "DPM++ 2M SDE", "DDIM"])
def test_image_of_a_batch_is_its_seed_alone(demo, sampler):
    _third_equals_its_seed_alone(demo, BASE.with_(sampler=sampler))


def test_negative_prompt_of_another_token_length(demo, monkeypatch):
    """Cond rows of 77 tokens (two AND parts) and an uncond of 154 run apart, image by image, as alone; with NGMS
    (no uncond on odd steps) and CFG rescale per image too."""
    seen = []
    real = CFGDenoiser.__call__
    monkeypatch.setattr(CFGDenoiser, "__call__", lambda self, x, s: seen.append(self) or real(self, x, s))
    _third_equals_its_seed_alone(demo, BASE.with_(sampler="DPM++ 2M", negative_prompt=LONG, s_min_uncond=8.0,
                                                  cfg_rescale=0.5, prompt=BASE.prompt + " AND a green square :0.6"))
    # per image: each cond, then the uncond, alone on even steps; on odd ones (NGMS) its two conds in one call
    assert seen[0].calls == ([1] * 9 + [2] * 3) * 2 and seen[0].step == 4


def test_deepcache_caches_per_image(demo):
    batch = _third_equals_its_seed_alone(demo, BASE.with_(sampler="DPM++ 2M", steps=6, deepcache=2))
    assert not np.array_equal(batch[1], batch[2])


def test_controlnet_runs_per_image(tmp_path):
    """ControlNet runs inside each per-image UNet call: its residuals (here only on the cond rows) too."""
    from PIL import Image

    from sd1kit.dev.controlnet import write_tiny_controlnet
    from sd1kit.pipeline.controlnet import ControlUnit
    from sd1kit.pipeline.model import random_tiny_model

    net = write_tiny_controlnet(tmp_path / "cn.safetensors", "ldm")
    picture = np.zeros((96, 80, 3), np.uint8)
    picture[20:70, 15:60] = 255
    Image.fromarray(picture).save(tmp_path / "control.png")
    unit = ControlUnit(str(net), str(tmp_path / "control.png"), control_mode="ControlNet is more important",
                       guidance_end=0.6)
    _third_equals_its_seed_alone(random_tiny_model(), BASE.with_(sampler="DPM++ 2M", controlnets=[unit]))


def test_per_image_false_runs_through_generate(demo, monkeypatch):
    """The switch to one UNet call per step over the whole batch: runs; its pictures may round apart."""
    real = CFGDenoiser.__call__

    def batched(self, x, sigma):
        self.per_image = False
        return real(self, x, sigma)

    monkeypatch.setattr(CFGDenoiser, "__call__", batched)
    result = generate(BASE.with_(batch_size=3, sampler="DDIM"), demo)
    assert len(result.images) == 3 and all(np.asarray(i.image).std() > 0 for i in result.images)


def test_one_call_over_the_batch_is_allowed_to_round_apart(demo):
    """per_image=False: one UNet call of [cond rows..., uncond rows...] (faster on a GPU; not asserted equal
    to the images alone). Either way `last_uncond_denoised` is the negative prompt's x0-hat, shaped like x."""
    den = Denoiser(unet_model(demo.modules.unet), demo.schedule)
    g = torch.Generator().manual_seed(0)
    width = demo.modules.unet.config.cross_attention_dim
    cond, uncond = torch.randn(1, 77, width, generator=g), torch.randn(1, 77, width, generator=g)
    x, sigma = torch.randn(3, 4, 8, 8, generator=g) * 3, torch.full((3,), 3.0)

    def make(n=3, **kw):
        return CFGDenoiser(den, lambda s: [[(cond, 1.0)]] * n, lambda s: uncond.expand(n, -1, -1), s_min_uncond=5.0,
                           **kw)

    with torch.no_grad():
        one, each, lone = make(per_image=False), make(), make(1)
        out_one, out_each, out_lone = one(x, sigma), each(x, sigma), lone(x[2:], sigma[2:])
        assert one.calls == [6] and each.calls == [2, 2, 2] and one.step == each.step == 1
        torch.testing.assert_close(out_one, out_each, rtol=1e-4, atol=1e-4)
        assert torch.equal(out_each[2:], out_lone)
        assert each.last_uncond_denoised.shape == x.shape
        assert torch.equal(each.last_uncond_denoised[2:], lone.last_uncond_denoised)
        torch.testing.assert_close(each.last_uncond_denoised[2:], den(x[2:], sigma[2:], uncond), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(one.last_uncond_denoised, each.last_uncond_denoised, rtol=1e-4, atol=1e-4)
        each(x, sigma)  # an odd step below the NGMS sigma: the cond x0-hat stands in for the uncond
        assert each.calls[3:] == [1, 1, 1] and each.step == 2
        assert torch.equal(each.last_uncond_denoised[2:], den(x[2:], sigma[2:], cond))
