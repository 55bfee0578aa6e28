"""LoRA / LyCORIS: every algorithm's delta against the lycoris-lora library, key naming schemes, run-time
patches (exact removal, stacking), baking == run-time, extraction, reports and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sd1kit.adapters.algorithms import boft, full, glora, ia3, loha, lokr, lora, norm, oft
from sd1kit.adapters.stack import _dora
from sd1kit.dev.adapters import ALGORITHMS, NAMINGS, write_synthetic_adapter
from sd1kit.formats.source import open_source

# real SD1 layer shapes: attn2.to_k (768 -> 320), ff.net.2 (1280 -> 320 at level 0 is 1280x320), proj_in 1x1 conv,
# a resnet 3x3 conv
LINEAR, LINEAR_WIDE, CONV1, CONV3 = (320, 768), (320, 1280), (320, 320, 1, 1), (640, 320, 3, 3)
G = torch.Generator().manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64).float() * 0.1


def close(a, b, rel=1e-6):
    a, b = a.double(), b.double()
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.linalg.norm(a - b) <= rel * max(torch.linalg.norm(b), 1e-12), float(torch.linalg.norm(a - b))


@pytest.mark.parametrize("shape", [LINEAR, CONV1, CONV3], ids=["linear", "conv1x1", "conv3x3"])
def test_lora_locon_matches_lycoris(shape):
    from lycoris.functional import locon

    out, inn, *k = shape
    r, alpha = 8, 4.0
    down, up = rnd(r, inn, *k), rnd(out, r, *([1, 1] if k else []))
    expected = locon.diff_weight(down, up, None, gamma=alpha / r, backend="torch")
    got = lora.delta({"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(alpha)},
                     torch.zeros(shape), 1.0).weight
    close(got, expected.reshape(shape))


def test_locon_tucker_matches_lycoris():
    from lycoris.functional import locon

    r = 8
    down, mid, up = rnd(r, 320, 1, 1), rnd(r, r, 3, 3), rnd(640, r, 1, 1)
    expected = locon.diff_weight(down, up, mid, gamma=0.5, backend="torch")
    got = lora.delta({"lora_down.weight": down, "lora_mid.weight": mid, "lora_up.weight": up,
                      "alpha": torch.tensor(4.0)}, torch.zeros(CONV3), 1.0).weight
    close(got, expected)


@pytest.mark.parametrize("shape", [LINEAR, CONV3], ids=["linear", "conv3x3"])
def test_loha_matches_lycoris(shape):
    from lycoris.functional import loha as L

    out, inn, *k = shape
    r = 6
    w1a, w1b, w2a, w2b = rnd(out, r), rnd(r, inn, *k), rnd(out, r), rnd(r, inn, *k)
    expected = L.diff_weight(w1b, w1a, w2b, w2a, None, None, gamma=3.0 / r, backend="torch")
    got = loha.delta({"hada_w1_a": w1a, "hada_w1_b": w1b, "hada_w2_a": w2a, "hada_w2_b": w2b,
                      "alpha": torch.tensor(3.0)}, torch.zeros(shape), 1.0).weight
    close(got, expected.reshape(shape))


def test_loha_tucker_matches_lycoris():
    from lycoris.functional import loha as L

    r = 6
    t1, w1a, w1b, t2, w2a, w2b = rnd(r, r, 3, 3), rnd(r, 640), rnd(r, 320), rnd(r, r, 3, 3), rnd(r, 640), rnd(r, 320)
    expected = L.diff_weight(w1b, w1a, w2b, w2a, t1, t2, gamma=0.5, backend="torch")
    got = loha.delta({"hada_w1_a": w1a, "hada_w1_b": w1b, "hada_t1": t1, "hada_w2_a": w2a, "hada_w2_b": w2b,
                      "hada_t2": t2, "alpha": torch.tensor(3.0)}, torch.zeros(CONV3), 1.0).weight
    close(got, expected)


@pytest.mark.parametrize("layout", ["w1_full_w2_lowrank", "both_lowrank", "both_full", "conv_w2_lowrank",
                                    "conv_tucker"])
def test_lokr_matches_lycoris(layout):
    from lycoris.functional import lokr as K

    r, alpha = 4, 2.0
    w1 = w1a = w1b = w2 = w2a = w2b = t2 = None
    shape = LINEAR_WIDE
    if layout == "w1_full_w2_lowrank":
        w1, w2a, w2b = rnd(4, 8), rnd(80, r), rnd(r, 160)
    elif layout == "both_lowrank":
        w1a, w1b, w2a, w2b = rnd(4, r), rnd(r, 8), rnd(80, r), rnd(r, 160)
    elif layout == "both_full":
        w1, w2 = rnd(4, 8), rnd(80, 160)
    elif layout == "conv_w2_lowrank":
        shape = CONV3
        w1, w2a, w2b = rnd(4, 4), rnd(160, r), rnd(r, 80, 3, 3)
    else:
        shape = CONV3
        w1, t2, w2a, w2b = rnd(4, 4), rnd(r, r, 3, 3), rnd(r, 160), rnd(r, 80)
    t = {k: v for k, v in {"lokr_w1": w1, "lokr_w1_a": w1a, "lokr_w1_b": w1b, "lokr_w2": w2, "lokr_w2_a": w2a,
                           "lokr_w2_b": w2b, "lokr_t2": t2}.items() if v is not None}
    t["alpha"] = torch.tensor(alpha)
    got = lokr.delta(t, torch.zeros(shape), 1.0).weight
    if layout == "conv_tucker":  # the functional API takes the rank from w2_a, which is [r, b] in Tucker form
        expected = K.kron_weight(w1, w1a, w1b, w2, w2a, w2b, t2, scale=alpha / r, backend="torch")
    else:
        expected = K.diff_weight(w1, w1a, w1b, w2, w2a, w2b, t2, gamma=alpha, backend="torch")
    close(got, expected.reshape(shape))
    if layout == "both_full":  # the full-matrix rule: alpha is ignored
        close(got, torch.kron(w1, w2))


@pytest.mark.parametrize("on_input", [False, True])
@torch.no_grad()
def test_ia3_matches_lycoris(on_input):
    from lycoris.modules.ia3 import IA3Module

    layer = torch.nn.Linear(768, 320, bias=False)
    layer.weight.data = rnd(320, 768)
    w = rnd(768 if on_input else 320)
    module = IA3Module("x", layer, 1, train_on_input=on_input)
    module.weight.data.copy_(w.reshape(module.weight.shape))
    expected, _ = module.get_diff_weight()
    got = ia3.delta({"weight": w, "on_input": torch.tensor(int(on_input))}, layer.weight.data, 1.0).weight
    close(got, expected.reshape(got.shape))


@torch.no_grad()
def test_full_and_norm_match_lycoris():
    from lycoris.modules.full import FullModule
    from lycoris.modules.norms import NormModule

    layer = torch.nn.Linear(768, 320)
    diff, diff_b = rnd(320, 768), rnd(320)
    module = FullModule.make_module_from_state_dict("x", layer, diff, diff_b)
    expected_w, expected_b = module.get_diff_weight()
    got = full.delta({"diff": diff, "diff_b": diff_b}, layer.weight.data, 1.0)
    close(got.weight, expected_w)
    close(got.bias, expected_b)
    gn = torch.nn.GroupNorm(32, 320)
    w_norm, b_norm = rnd(320), rnd(320)
    module = NormModule.make_module_from_state_dict("y", gn, w_norm, b_norm)
    expected_w, expected_b = module.get_diff_weight()
    got = norm.delta({"w_norm": w_norm, "b_norm": b_norm}, gn.weight.data, 1.0)
    close(got.weight, expected_w)
    close(got.bias, expected_b)


@torch.no_grad()
def test_glora_matches_lycoris():
    from lycoris.modules.glora import GLoRAModule

    layer = torch.nn.Linear(768, 320, bias=False)
    layer.weight.data = rnd(320, 768)
    r = 8
    a1, a2, b1, b2 = rnd(768, r), rnd(r, 768), rnd(320, r), rnd(r, 768)
    module = GLoRAModule.make_module_from_state_dict("x", layer, a1, a2, b1, b2, None, torch.tensor(4.0))
    expected, _ = module.get_diff_weight()
    got = glora.delta({"a1.weight": a1, "a2.weight": a2, "b1.weight": b1, "b2.weight": b2,
                       "alpha": torch.tensor(4.0)}, layer.weight.data, 1.0).weight
    close(got, expected.reshape(got.shape))


@pytest.mark.parametrize("shape", [LINEAR, CONV3], ids=["linear", "conv3x3"])
@pytest.mark.parametrize("constrained", [False, True])
def test_diag_oft_matches_lycoris(shape, constrained):
    from lycoris.functional import diag_oft

    weight = rnd(*shape)
    blocks, rescale = rnd(shape[0] // 16, 16, 16), 1 + rnd(shape[0], *[1] * (len(shape) - 1))
    alpha = 1e-4 if constrained else 0.0
    expected = diag_oft.diff_weight(weight, blocks, rescale, constraint=alpha * shape[0] or None, backend="torch")
    got = oft.delta({"oft_blocks": blocks, "rescale": rescale, "alpha": torch.tensor(alpha)}, weight, 1.0).weight
    close(got, expected)


@pytest.mark.parametrize("multiplier", [1.0, 0.6])
def test_boft_matches_lycoris(multiplier):
    from lycoris.functional import boft as B

    weight = rnd(*CONV3)
    blocks = rnd(3, 640 // 8, 8, 8)
    expected = B.diff_weight(weight, blocks, None, constraint=None, scale=multiplier, backend="torch")
    got = boft.delta({"oft_blocks": blocks}, weight, multiplier)
    assert got.multiplied
    close(got.weight, expected)


@pytest.mark.parametrize("per", ["out", "in"])
def test_dora_matches_lycoris_weight_decompose(per):
    from lycoris.functional import weight_decompose

    weight, delta = rnd(*LINEAR), rnd(*LINEAR) * 0.1
    shape = (320, 1) if per == "out" else (1, 768)
    scale = 1 + rnd(*shape)
    expected = weight_decompose(weight + delta, scale, 1.0, per == "out")
    close(weight + _dora(weight, delta, scale), expected)


# --- on a tiny SD1 model ---

@pytest.fixture(scope="module")
def model(tiny_models):
    from sd1kit.pipeline.model import load_model

    return load_model(tiny_models["sd15"])


@pytest.fixture(scope="module")
def lora_dir(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("Lora")
    shapes = open_source(tiny_models["sd15"]).shapes
    for algorithm in ALGORITHMS:
        write_synthetic_adapter(folder / f"{algorithm}.safetensors", shapes, algorithm=algorithm)
    for naming in NAMINGS:
        write_synthetic_adapter(folder / f"named-{naming}.safetensors", shapes, algorithm="lora", naming=naming, seed=7)
    write_synthetic_adapter(folder / "other.safetensors", shapes, algorithm="lora", seed=3)
    return folder


def _request(prompt, lora_dir, **kw):
    from sd1kit.pipeline.request import GenerationRequest

    return GenerationRequest(prompt=prompt, negative_prompt="lowres", steps=2, width=64, height=64, seed=11,
                             lora_dir=str(lora_dir), **kw)


def _pixels(result):
    return np.asarray(result.images[0].image).astype(int)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_full_key_set_applies_with_no_unused_keys(model, lora_dir, algorithm):
    from sd1kit.pipeline.generate import generate

    before = {k: v.clone() for k, v in model.modules.unet.state_dict().items()}
    te_before = {k: v.clone() for k, v in model.modules.text_encoder.state_dict().items()}
    result = generate(_request(f"1girl <lora:{algorithm}:0.8>", lora_dir), model)
    report = result.adapters[0]
    assert report.unused == [] and report.mismatched == [] and sum(report.applied.values()) > 0
    assert f'Lora hashes: "{algorithm}: ' in result.images[0].infotext
    assert all(torch.equal(before[k], v) for k, v in model.modules.unet.state_dict().items())  # removed exactly
    assert all(torch.equal(te_before[k], v) for k, v in model.modules.text_encoder.state_dict().items())


def test_namings_give_identical_pictures(model, lora_dir):
    from sd1kit.pipeline.generate import generate

    pictures = [_pixels(generate(_request(f"1girl <lora:named-{n}:0.9>", lora_dir), model)) for n in NAMINGS]
    assert all(np.array_equal(pictures[0], p) for p in pictures[1:])
    plain = _pixels(generate(_request("1girl", lora_dir), model))
    assert not np.array_equal(plain, pictures[0])


def test_multipliers_and_te_unet_split(model, lora_dir):
    from sd1kit.pipeline.generate import generate

    zero = _pixels(generate(_request("1girl <lora:lora:0>", lora_dir), model))
    plain = _pixels(generate(_request("1girl", lora_dir), model))
    assert np.array_equal(zero, plain)
    te_only = generate(_request("1girl <lora:lora:1:0>", lora_dir), model)
    assert not np.array_equal(_pixels(te_only), plain)


def test_stacking_order(model, lora_dir):
    """LoRA deltas add, so order does not change the weights beyond rounding; IA3 scales the weight it is given,
    so order matters for it, as in A1111."""
    from sd1kit.adapters.file import open_adapter
    from sd1kit.adapters.live import adapters_applied, live_shapes
    from sd1kit.adapters.stack import ActiveAdapter, AdapterStack

    def weights(names):
        stack = AdapterStack([ActiveAdapter(open_adapter(lora_dir / f"{n}.safetensors"), n) for n in names],
                             live_shapes(model.modules))
        with adapters_applied(model.modules, stack):
            return {k: v.clone() for k, v in model.modules.unet.state_dict().items()}

    ab, ba = weights(["lora", "other"]), weights(["other", "lora"])
    for k in ab:
        torch.testing.assert_close(ab[k], ba[k], rtol=1e-6, atol=1e-7)
    li, il = weights(["lora", "ia3"]), weights(["ia3", "lora"])
    assert any(not torch.allclose(li[k], il[k], rtol=1e-5, atol=1e-6) for k in li)


def test_baked_checkpoint_draws_what_run_time_patching_draws(model, lora_dir, tiny_models, tmp_path):
    from sd1kit.adapters.bake import bake
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model

    out = tmp_path / "baked.safetensors"
    source_before = tiny_models["sd15"].read_bytes()
    bake(tiny_models["sd15"], [(str(lora_dir / "lora.safetensors"), 0.7), (str(lora_dir / "loha.safetensors"), 0.5)],
         out)
    assert tiny_models["sd15"].read_bytes() == source_before
    record = json.loads(open_source(out).metadata["sd1kit_baked"])
    assert [a["weight"] for a in record["adapters"]] == [0.7, 0.5] and len(record["base"]["sha256"]) == 64
    runtime = generate(_request("1girl <lora:lora:0.7> <lora:loha:0.5>", lora_dir), model)
    baked = generate(_request("1girl", lora_dir), load_model(out))
    # the base is fp16: run-time patches are cast to fp16 too, so the two paths give the same weights
    assert np.abs(_pixels(runtime) - _pixels(baked)).max() <= 1


def test_bake_keeps_the_yaml_and_refuses_other_families(tmp_path, tiny_models, lora_dir):
    from sd1kit.adapters.bake import bake
    from sd1kit.errors import Sd1kitError
    from sd1kit.formats.safetensors_io import write_safetensors

    ef = tiny_models["easyfluff"]
    out = bake(ef, [(str(lora_dir / "lora.safetensors"), 1.0)], tmp_path / "ef-baked.safetensors")
    assert out.yaml is not None and out.yaml.read_text() == ef.with_suffix(".yaml").read_text()
    sdxl = tmp_path / "sdxl_lora.safetensors"
    write_safetensors(sdxl, {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.zeros(768, 4),
                             "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(4, 768),
                             "lora_unet_input_blocks_4_1_transformer_blocks_9_attn1_to_q.lora_up.weight": torch.zeros(640, 4),
                             "lora_unet_input_blocks_4_1_transformer_blocks_9_attn1_to_q.lora_down.weight": torch.zeros(4, 640)})
    with pytest.raises(Sd1kitError, match="SDXL"):
        bake(ef, [(str(sdxl), 1.0)], tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_extracted_lora_reproduces_the_difference(tiny_models, lora_dir, tmp_path):
    from sd1kit.adapters.bake import bake
    from sd1kit.adapters.extract import extract
    from sd1kit.adapters.file import open_adapter

    tuned = bake(tiny_models["sd15"], [(str(lora_dir / "lora.safetensors"), 1.0)], tmp_path / "t.safetensors").out
    stats = extract(tiny_models["sd15"], tuned, tmp_path / "x.safetensors", rank=4)
    assert stats["modules"] > 0
    extracted = open_adapter(tmp_path / "x.safetensors")
    assert extracted.metadata["ss_network_dim"] == "4" and "sd1kit_extracted" in extracted.metadata
    # the synthetic LoRA has rank 4 (alpha 2): a rank-4 SVD recovers each linear delta up to fp16 rounding
    base, tuned_src = open_source(tiny_models["sd15"]), open_source(tuned)
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    t = extracted.tensors(name)
    approx = (t["lora_up.weight"].float() @ t["lora_down.weight"].float())
    truth = tuned_src.get_tensor(key).float() - base.get_tensor(key).float()
    assert torch.linalg.norm(approx - truth) <= 0.02 * torch.linalg.norm(truth) + 1e-3


def test_bad_adapters_are_clear_errors(model, lora_dir, tmp_path, cli, tiny_models):
    from sd1kit.errors import Sd1kitError
    from sd1kit.pipeline.generate import generate

    with pytest.raises(Sd1kitError, match="'missing_lora' .*is not in"):
        generate(_request("x <lora:missing_lora:1>", lora_dir), model)
    (tmp_path / "notes.safetensors").write_bytes(b"hello")
    r = cli("lora", "bake", tiny_models["sd15"], tmp_path / "notes.safetensors", "--out", tmp_path / "o.safetensors")
    assert r.code == 2 and "notes.safetensors" in r.err and not (tmp_path / "o.safetensors").exists()
    r = cli("lora", "check", tiny_models["sd15"], lora_dir / "lora.safetensors", "--json")
    assert r.code == 0 and json.loads(r.out)[0]["unused"] == []


def test_inspect_shows_adapter_details(cli, lora_dir):
    r = cli("inspect", lora_dir / "lokr.safetensors", "--json")
    adapter = json.loads(r.out)[0]["adapter"]
    assert adapter["algorithms"] == {"lokr": adapter["modules"]} and adapter["training"]["ss_network_dim"] == "4"
    assert adapter["top_tags"][:2] == ["1girl", "solo"] and set(adapter["parts"]) == {"unet", "te"}


def test_lora_block_weight(model, lora_dir):
    from sd1kit.merge.blocks import parse_lbw
    from sd1kit.pipeline.generate import generate

    plain = _pixels(generate(_request("1girl", lora_dir), model))
    full = _pixels(generate(_request("1girl <lora:lora:0.8>", lora_dir), model))
    assert np.array_equal(_pixels(generate(_request("1girl <lora:lora:0.8:lbw=ALL_A>", lora_dir), model)), plain)
    assert np.array_equal(_pixels(generate(_request("1girl <lora:lora:0.8:lbw=ALL_B>", lora_dir), model)), full)
    only_out = _pixels(generate(_request("1girl <lora:lora:0.8:lbw=OUT_ONLY>", lora_dir), model))
    assert not np.array_equal(only_out, plain) and not np.array_equal(only_out, full)
    weights = parse_lbw("1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1")
    assert (weights["BASE"], weights["IN01"], weights["IN00"], weights["OUT03"], weights["OUT00"]) == (1, 0, 1, 1, 1)
