"""Hypernetworks (`<hypernet:NAME:STRENGTH>`), against an independent re-implementation of A1111's formula
(`modules/hypernetworks/hypernetwork.py`: `HypernetworkModule.forward` = x + mlp(x) * multiplier, applied to the
context of every attention's k and v, stacked in prompt order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sd1kit.dev.hypernetworks import write_hypernetwork

STRUCTURES = {  # name -> factory options: every layer structure shape, activation, layer norm and dropout option
    "plain": {},
    "relu-deep-norm-dropout": dict(layer_structure=(1, 2, 2, 1), activation="relu", layer_norm=True, use_dropout=True,
                                   last_layer_dropout=True),
    "leakyrelu-out": dict(activation="leakyrelu", activate_output=True),
    "elu": dict(activation="elu", layer_structure=(1, 1.5, 1)),
    "swish": dict(activation="swish", layer_structure=(1, 2, 1, 2, 1)),
    "tanh-norm": dict(activation="tanh", layer_norm=True),
    "sigmoid": dict(activation="sigmoid", use_dropout=True),
    "gelu": dict(activation="gelu", layer_structure=(1, 4, 1)),
    "mish-out": dict(activation="mish", activate_output=True),
    "prelu": dict(activation="prelu"),
    "nai-leak": dict(old_layout=True),
}
ACTS = {"relu": F.relu, "leakyrelu": F.leaky_relu, "elu": F.elu, "swish": F.hardswish, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid, "gelu": F.gelu, "mish": F.mish}


def a1111_formula(x, state: dict, options: dict, strength: float) -> torch.Tensor:
    """A1111's module, written out: the Linear layers in order of their keys; after each, the activation (not
    after the last unless activate_output), then layer norm; dropout does nothing in inference."""
    state = {k.replace("linear1.", "linear.0.").replace("linear2.", "linear.1."): v for k, v in state.items()}
    index = sorted({int(k.split(".")[1]) for k in state})
    linears = [i for i in index if state[f"linear.{i}.weight"].ndim == 2]
    act, n = options.get("activation"), len(options.get("layer_structure", (1, 2, 1)))
    h = x
    for number, i in enumerate(linears):
        h = F.linear(h, state[f"linear.{i}.weight"], state[f"linear.{i}.bias"])
        if act is not None and (number < n - 2 or options.get("activate_output", False)):
            if act == "prelu":
                h = F.prelu(h, state[f"linear.{i + 1}.weight"])
            else:
                h = ACTS[act](h)
        if options.get("layer_norm"):
            j = next(k for k in index if k > i and state[f"linear.{k}.weight"].ndim == 1 and f"linear.{k}.bias" in state)
            h = F.layer_norm(h, (h.shape[-1],), state[f"linear.{j}.weight"], state[f"linear.{j}.bias"])
    return x + h * strength


@pytest.mark.parametrize("name", STRUCTURES)
def test_module_equals_the_formula(tmp_path, name):
    from sd1kit.adapters.hypernetwork import load_hypernetwork, residual

    options = STRUCTURES[name]
    path = write_hypernetwork(tmp_path / f"{name}.pt", **options)
    raw = torch.load(path, weights_only=True)
    hn = load_hypernetwork(path)
    x = torch.randn(2, 7, 32)
    for index in (0, 1):
        got = residual(hn.modules[32][index], x, 0.7)
        want = a1111_formula(x, raw[32][index], options, 0.7)
        assert torch.allclose(got, want, atol=1e-6), (name, (got - want).abs().max())


def test_keys_are_where_a1111_puts_them(tmp_path):
    """[1, 2, 2, 1], relu, layer norm, dropout with last_layer_dropout: Linear, ReLU, LayerNorm, Dropout after
    each layer but the last, which has no activation or dropout."""
    from sd1kit.adapters.hypernetwork import Structure

    s = Structure.of({"layer_structure": [1, 2, 2, 1], "activation_func": "relu", "is_layer_norm": True,
                      "use_dropout": True, "last_layer_dropout": True, "activate_output": False}, "x")
    assert s.dropout == (0.0, 0.3, 0.3, 0.0)
    keys = [k.rsplit(".", 1)[0] for k in s.module(8).state_dict()]
    assert sorted(set(keys), key=int) == ["0", "2", "4", "6", "8", "9"]


@pytest.fixture(scope="module")
def model(tiny_models):
    from sd1kit.pipeline.model import load_model

    return load_model(tiny_models["sd15"])


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    folder = root / "models" / "hypernetworks"
    for i, name in enumerate(STRUCTURES):
        write_hypernetwork(folder / f"{name}.pt", seed=i, **STRUCTURES[name])
    write_hypernetwork(folder / "sub" / "second.pt", seed=99, activation="relu")
    return root


def _request(prompt, home, **kw):
    from sd1kit.pipeline.request import GenerationRequest

    return GenerationRequest(prompt=prompt, negative_prompt="lowres", steps=2, width=64, height=64, seed=5,
                             hypernetwork_dir=str(home / "models" / "hypernetworks"), **kw)


def _pixels(result):
    return np.asarray(result.images[0].image).astype(int)


def test_attention_uses_the_hypernetwork_context(model, home):
    """One attention of the UNet, with two hypernetworks stacked: k = to_k(h2k(h1k(ctx))), v likewise."""
    from sd1kit.adapters.hypernetwork import hypernetworks_applied, load_hypernetwork

    folder = home / "models" / "hypernetworks"
    a, b = load_hypernetwork(folder / "plain.pt"), load_hypernetwork(folder / "tanh-norm.pt")
    attn = next(m for n, m in model.modules.unet.named_modules() if n.endswith("attn2"))
    x, ctx = torch.randn(1, 16, attn.to_q.in_features), torch.randn(1, 77, 32)
    raw_a, raw_b = (torch.load(p, weights_only=True)[32] for p in (folder / "plain.pt", folder / "tanh-norm.pt"))
    k_ctx = a1111_formula(a1111_formula(ctx, raw_a[0], STRUCTURES["plain"], 0.5), raw_b[0], STRUCTURES["tanh-norm"], 2)
    v_ctx = a1111_formula(a1111_formula(ctx, raw_a[1], STRUCTURES["plain"], 0.5), raw_b[1], STRUCTURES["tanh-norm"], 2)
    with torch.no_grad():
        heads = attn.heads
        q, k, v = attn.to_q(x), attn.to_k(k_ctx), attn.to_v(v_ctx)
        split = lambda t: t.view(1, -1, heads, t.shape[-1] // heads).transpose(1, 2)
        want = F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(1, 16, -1)
        want = attn.to_out[0](want)
        plain = attn(x, encoder_hidden_states=ctx)
        with hypernetworks_applied(model.modules.unet, [(a, 0.5), (b, 2.0)]):
            got = attn(x, encoder_hidden_states=ctx)
        again = attn(x, encoder_hidden_states=ctx)
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, plain, atol=1e-4)
    assert torch.equal(again, plain)  # removed exactly


def test_generation_strength_stacking_and_infotext(model, home):
    from sd1kit.pipeline.generate import generate

    plain = generate(_request("1girl", home), model)
    zero = generate(_request("1girl <hypernet:relu-deep-norm-dropout:0>", home), model)
    assert np.array_equal(_pixels(zero), _pixels(plain))
    one = generate(_request("1girl <hypernet:relu-deep-norm-dropout:1>", home), model)
    assert not np.array_equal(_pixels(one), _pixels(plain))
    assert "Hypernetwork hashes: \"relu-deep-norm-dropout: " in one.images[0].infotext
    assert one.images[0].infotext.startswith("1girl <hypernet:relu-deep-norm-dropout:1>\n")
    ab = generate(_request("1girl <hypernet:gelu:0.8> <hypernet:nai-leak:1>", home), model)
    ba = generate(_request("1girl <hypernet:nai-leak:1> <hypernet:gelu:0.8>", home), model)
    assert not np.array_equal(_pixels(ab), _pixels(ba))  # the order of the stack is the prompt's
    assert np.array_equal(_pixels(generate(_request("1girl", home), model)), _pixels(plain))  # nothing left behind
    nested = generate(_request("1girl <hypernet:sub/second:1>", home), model)
    assert not np.array_equal(_pixels(nested), _pixels(plain))


def test_missing_and_outside_names_fail_in_one_line(model, home, tmp_path):
    from sd1kit.errors import Sd1kitError
    from sd1kit.pipeline.generate import generate

    write_hypernetwork(tmp_path / "outside.pt")
    for name in ("nothing", str(tmp_path / "outside"), "../outside"):
        with pytest.raises(Sd1kitError, match="is not in"):
            generate(_request(f"x <hypernet:{name}:1>", home), model)


def test_round_trip_through_the_infotext_and_from(cli, tmp_path, tiny_models, home):
    root = home / "models"
    first, second = tmp_path / "first", tmp_path / "second"
    r = cli("generate", "1girl <hypernet:swish:0.6>, smile", "--model", tiny_models["sd15"], "--models-dir", root,
            "--steps", "3", "--size", "64x64", "--seed", "21", "--out", first, "--quiet")
    assert r.code == 0, r.err
    picture = next(first.iterdir())
    assert "Hypernetwork hashes" in Image.open(picture).text["parameters"]
    r = cli("generate", "--from", picture, "--model", tiny_models["sd15"], "--models-dir", root, "--out", second,
            "--quiet")
    assert r.code == 0, r.err
    again = next(second.iterdir())
    assert np.array_equal(np.asarray(Image.open(picture)), np.asarray(Image.open(again)))
    assert Image.open(picture).text == Image.open(again).text


def test_an_old_a1111_picture_names_its_hypernetwork_as_keys(tmp_path):
    """2022 A1111 wrote `Hypernet: name, Hypernet hash: <8 hex>, Hypernet strength: s`; its reader appends the
    tag to the prompt."""
    from sd1kit.pipeline.from_picture import request_from_infotext

    text = ("1girl\nNegative prompt: lowres\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
            "Model hash: 925997e9, Hypernet: anime_3, Hypernet hash: 4ac1ed4c, Hypernet strength: 0.65")
    request, _ = request_from_infotext(text)
    assert request.prompt == "1girl<hypernet:anime_3:0.65>"
    assert request.hypernet_hashes == {"anime_3": "4ac1ed4c"}


def test_found_by_the_old_hash_when_renamed(home, tmp_path):
    import shutil

    from sd1kit.adapters.hypernetwork import find_hypernetwork
    from sd1kit.formats.hashes import file_hashes

    folder = tmp_path / "hypernetworks"
    folder.mkdir()
    shutil.copy(home / "models" / "hypernetworks" / "plain.pt", folder / "renamed.pt")
    legacy = file_hashes(folder / "renamed.pt").a1111_legacy
    assert find_hypernetwork("plain", folder, legacy) == folder / "renamed.pt"


def test_hostile_hypernetwork_files(tmp_path, model):
    from sd1kit.adapters.hypernetwork import load_hypernetwork
    from sd1kit.errors import Sd1kitError

    good = torch.load(write_hypernetwork(tmp_path / "good.pt"), weights_only=True)
    cases = {
        "shapes": {**good, 32: (good[64][0], good[64][1])},
        "activation": {**good, "activation_func": "threshold"},
        "structure": {**good, "layer_structure": [2, 1]},
        "pair": {**good, 32: good[32][0]},
        "empty": {"name": "x"},
    }
    for name, data in cases.items():
        torch.save(data, tmp_path / f"{name}.pt")
        with pytest.raises(Sd1kitError) as e:
            load_hypernetwork(tmp_path / f"{name}.pt")
        assert "\n" not in str(e.value) and str(tmp_path / f"{name}.pt") in str(e.value), name


def test_inspect_shows_the_structure(cli, home):
    path = home / "models" / "hypernetworks" / "relu-deep-norm-dropout.pt"
    r = cli("inspect", path, "--json")
    assert r.code == 0, r.err
    h = r.json()[0]["hypernetwork"]
    assert r.json()[0]["kind"] == "hypernetwork"
    assert h["layer_structure"] == [1, 2, 2, 1] and h["activation_func"] == "relu" and h["layer_norm"]
    assert h["dropout_structure"] == [0, 0.3, 0.3, 0] and h["widths"] == [32, 64]
    human = cli("inspect", path).out
    assert "structure   [1, 2, 2, 1], activation relu, layer norm, dropout [0, 0.3, 0.3, 0]" in human


def test_openvino_refuses_in_one_line_and_auto_moves_to_torch():
    from sd1kit.pipeline.request import GenerationRequest
    from sd1kit.pipeline.runtime import torch_only_reason

    assert torch_only_reason(GenerationRequest(prompt="x <hypernet:a:1>")) == "a hypernetwork"


def test_server_applies_and_lists_them(tiny_models, home, tmp_path):
    import base64
    import io
    import json
    import shutil

    from fastapi.testclient import TestClient

    from sd1kit.server.app import ServerConfig, create_app

    models = tmp_path / "models"
    shutil.copytree(home / "models" / "hypernetworks", models / "hypernetworks")
    (models / "Stable-diffusion").mkdir()
    shutil.copy(tiny_models["sd15"], models / "Stable-diffusion" / "sd15-tiny.safetensors")
    body = {"prompt": "1girl", "steps": 2, "width": 64, "height": 64, "seed": 3}
    with TestClient(create_app(ServerConfig(models, model="sd15-tiny"))) as client:
        names = [h["name"] for h in client.get("/sdapi/v1/hypernetworks").json()]
        assert "relu-deep-norm-dropout" in names and "second" in names
        plain = client.post("/sdapi/v1/txt2img", json=body).json()
        tagged = client.post("/sdapi/v1/txt2img", json={**body, "prompt": "1girl <hypernet:elu:1>"}).json()
        missing = client.post("/sdapi/v1/txt2img", json={**body, "prompt": "1girl <hypernet:../elu:1>"})
    pixels = [np.asarray(Image.open(io.BytesIO(base64.b64decode(r["images"][0])))) for r in (plain, tagged)]
    assert not np.array_equal(*pixels)
    assert 'Hypernetwork hashes: "elu: ' in json.loads(tagged["info"])["infotexts"][0]
    assert missing.status_code in (400, 422) and "hypernet" in missing.text
