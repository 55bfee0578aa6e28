"""Detection from the header alone: kind, family, variant, prediction (with its source), EMA, container."""

from __future__ import annotations

import hashlib

import pytest
import torch

from sd1kit.dev.manifest import infos_from_shapes as _infos, sd1_manifest, write_header_only
from sd1kit.dev.tiny import tiny_state_dict, v1_inference_yaml
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.formats.source import open_source
from sd1kit.models.detect import detect
from sd1kit.models.families import FAMILIES, KINDS, VARIANTS
from sd1kit.models.features import header_features

EXPECTED = {  # layout: kind, variant, prediction, prediction_source, has_ema, container
    "sd15": ("checkpoint", "txt2img", "epsilon", "default", False, "safetensors"),
    "nai": ("checkpoint", "txt2img", "epsilon", "default", False, "ckpt"),
    "wd": ("checkpoint", "txt2img", "epsilon", "default", True, "ckpt"),
    "easyfluff": ("checkpoint", "txt2img", "v", "yaml", False, "safetensors"),
    "inpainting": ("checkpoint", "inpainting", "epsilon", "default", False, "safetensors"),
    "diffusers": ("checkpoint", "txt2img", "epsilon", "default", False, "diffusers"),
    "nai-official": ("checkpoint", "txt2img", "epsilon", "default", False, "diffusers"),
}


def test_inspect_json_on_every_factory_layout(tiny_models, cli):
    result = cli("inspect", "--json", *tiny_models.values())
    assert result.code == 0, result.err
    reports = {r["path"]: r for r in result.json()}
    for layout, path in tiny_models.items():
        r = reports[str(path)]
        got = (r["kind"], r["variant"], r["prediction"], r["prediction_source"], r["has_ema"], r["container"])
        assert got == EXPECTED[layout], layout
        assert r["family"] == "sd1" and r["safe"] is True and r["unsafe_globals"] == []
        for field in ("path", "zero_terminal_snr", "dtypes", "components", "hashes", "metadata"):
            assert field in r
    nai = reports[str(tiny_models["nai"])]
    assert "old CLIP layout (no text_model.)" in nai["quirks"] and nai["dtypes"]["F32"] > 900
    assert reports[str(tiny_models["sd15"])]["dtypes"] == {"F16": 964}
    official = reports[str(tiny_models["nai-official"])]
    assert official["components"]["text_encoder"]["present"] is False
    assert any("no text encoder" in w for w in official["warnings"])
    assert reports[str(tiny_models["wd"])]["ema_params"] == reports[str(tiny_models["wd"])]["components"]["unet"]["params"]


def test_hashes_equal_independent_hashlib(tiny_models, cli):
    path = tiny_models["nai"]
    data = path.read_bytes()
    h = cli("inspect", "--json", path).json()[0]["hashes"]
    full = hashlib.sha256(data).hexdigest()
    assert h == {"sha256": full, "a1111_short": full[:10],
                 "a1111_legacy": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]}


def _write(path, sd, metadata=None, yaml=None):
    write_safetensors(path, sd, metadata)
    if yaml is not None:
        path.with_suffix(".yaml").write_text(yaml)
    return path


@pytest.fixture(scope="module")
def small_sd():
    return {k: v.half() for k, v in tiny_state_dict().items()}


@pytest.mark.parametrize("markers, metadata, yaml, override, expected", [
    ({}, {}, None, None, ("epsilon", "default")),
    ({"v_pred"}, {}, None, None, ("v", "marker")),
    ({"v_pred"}, {"sd1kit.prediction": "epsilon"}, None, None, ("epsilon", "metadata")),
    ({}, {"modelspec.prediction_type": "v"}, None, None, ("v", "metadata")),
    ({}, {"ss_v_parameterization": "true"}, None, None, ("v", "metadata")),
    ({"v_pred"}, {"sd1kit.prediction": "v"}, v1_inference_yaml(), None, ("epsilon", "yaml")),
    ({}, {}, v1_inference_yaml(v_prediction=True), None, ("v", "yaml")),
    ({}, {}, v1_inference_yaml(v_prediction=True), "epsilon", ("epsilon", "override")),
])
def test_prediction_source_order(tmp_path, small_sd, markers, metadata, yaml, override, expected):
    sd = {**small_sd, **{m: torch.zeros(0) for m in markers}}
    path = _write(tmp_path / "m.safetensors", sd, metadata, yaml)
    d = detect(open_source(path), prediction=override)
    assert (d.prediction, d.prediction_source) == expected


def test_zero_terminal_snr_from_marker_metadata_and_override(tmp_path, small_sd):
    path = _write(tmp_path / "z.safetensors", {**small_sd, "v_pred": torch.zeros(0), "ztsnr": torch.zeros(0)})
    d = detect(open_source(path))
    assert (d.prediction, d.zero_terminal_snr, d.zero_terminal_snr_source) == ("v", True, "marker")
    assert detect(open_source(path), ztsnr=False).zero_terminal_snr is False
    path2 = _write(tmp_path / "z2.safetensors", small_sd, {"ss_zero_terminal_snr": "True"})
    assert detect(open_source(path2)).zero_terminal_snr_source == "metadata"


def test_v_prediction_name_without_yaml_warns(copy_model, cli):
    path = copy_model("sd15", "fluffyrock-1088-zsnr-vpred-e231.safetensors")
    r = cli("inspect", "--json", path).json()[0]
    assert any("place fluffyrock-1088-zsnr-vpred-e231.yaml beside it or pass --prediction v" in w for w in r["warnings"])
    r = cli("inspect", "--json", "--prediction", "v", path).json()[0]
    assert r["prediction"] == "v" and r["prediction_source"] == "override" and not any("noise" in w for w in r["warnings"])


def test_full_size_header_is_detected_without_reading_data(tmp_path):
    path = write_header_only(tmp_path / "v1-5-pruned-emaonly.safetensors", sd1_manifest())
    assert path.stat().st_size > 2_000_000_000
    d = detect(open_source(path))
    assert (d.kind, d.family, d.variant) == ("checkpoint", "sd1", "txt2img")
    assert d.unet_config.model_channels == 320 and d.unet_config.channel_mult == (1, 2, 4, 4)
    assert d.components["unet"]["params"] == 859_520_964
    assert path.stat().st_blocks * 512 < 10_000_000  # still sparse: no tensor data was written or read


SYNTHETIC = {  # expected (kind, family) -> header shapes
    ("checkpoint", "sdxl"): {"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
                             "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
                             "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
                             "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)},
    ("checkpoint", "sd2"): {"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
                            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
                            "cond_stage_model.model.token_embedding.weight": (49408, 1024)},
    ("lora", "sd1"): {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (8, 320, 1, 1),
                      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (320, 8, 1, 1),
                      "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": ()},
    ("lycoris", "sd1"): {"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a": (320, 8),
                         "lora_te_text_model_encoder_layers_0_mlp_fc1.lokr_w1": (8, 8)},
    ("lora", "sdxl"): {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (8, 768)},
    ("embedding", "sd1"): {"emb_params": (4, 768)},
    ("vae", "sd1"): {"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_in.weight": (512, 4, 3, 3)},
    ("text_encoder", "sd1"): {"text_model.embeddings.token_embedding.weight": (49408, 768)},
    ("controlnet", "sd1"): {"control_model.input_blocks.0.0.weight": (320, 4, 3, 3),
                            "control_model.input_hint_block.0.weight": (16, 3, 3, 3)},
    ("unet", "sd1"): {"conv_in.weight": (320, 4, 3, 3), "down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3)},
}


@pytest.mark.parametrize("expected", list(SYNTHETIC))
def test_synthetic_headers_detect(tmp_path, expected):
    path = write_header_only(tmp_path / "x.safetensors", _infos(SYNTHETIC[expected]))
    d = detect(open_source(path))
    assert (d.kind, d.family) == expected


def _all_feature_sets(tiny_models):
    sets = [header_features({k: i.shape for k, i in _infos(s).items()}) for s in SYNTHETIC.values()]
    sets += [header_features(open_source(p).shapes) for p in tiny_models.values()]
    sets.append(header_features({k: i.shape for k, i in sd1_manifest().items()}))
    sets.append(header_features({}, ["768", "320", "name", "layer_structure"]))  # a hypernetwork
    return sets


@pytest.mark.parametrize("table", [KINDS, FAMILIES], ids=["kinds", "families"])
def test_no_two_rows_match_the_same_file(tiny_models, table):
    for features in _all_feature_sets(tiny_models):
        hits = [row.name for row in table if row.matches(features)]
        assert len(hits) == 1, (hits, features)


def test_variant_rows_are_distinct():
    channels = [v.unet_in_channels for v in VARIANTS]
    assert len(set(channels)) == len(channels)
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)


def test_sdxl_is_recognised_and_refused(tmp_path, cli):
    path = write_header_only(tmp_path / "ponyDiffusionV6XL.safetensors", _infos(SYNTHETIC[("checkpoint", "sdxl")]))
    result = cli("inspect", "--json", "--no-hash", path)
    assert result.code != 0 and result.json()[0]["family"] == "sdxl"
    assert "this is SDXL, not SD1" in result.err and result.err.count("\n") == 1
    out = tmp_path / "out.safetensors"
    result = cli("convert", path, out)
    assert result.code != 0 and "this is SDXL, not SD1" in result.err and not out.exists()
