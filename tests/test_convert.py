"""`sd1kit convert`: clean canonical safetensors, EMA modes, dtype, provenance, atomic, never over an input."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from sd1kit.formats.keys.ldm import EMA_PREFIX, POSITION_IDS, TE_PREFIX, UNET_PREFIX, ema_name
from sd1kit.formats.safetensors_io import read_header
from sd1kit.formats.source import open_source


def test_nai_ckpt_to_fp16_safetensors(tiny_models, tmp_path, cli):
    src = tiny_models["nai"]
    out = tmp_path / "nai.safetensors"
    result = cli("convert", src, out, "--dtype", "fp16")
    assert result.code == 0, result.err
    sd = load_file(str(out))
    original = open_source(src).load_state_dict()
    assert not any(k.startswith(EMA_PREFIX) or k == "state_dict" or k == POSITION_IDS for k in sd)
    assert any(k.startswith(TE_PREFIX) for k in sd)  # old CLIP layout fixed
    key = UNET_PREFIX + "input_blocks.0.0.weight"
    assert sd[key].dtype == torch.float16 and torch.equal(sd[key], original[key].half())
    assert sd["alphas_cumprod"].dtype == torch.float32  # schedule stays fp32
    meta = read_header(out).metadata
    assert meta["sd1kit.source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["sd1kit.source"] == src.name and meta["sd1kit.prediction"] == "epsilon"
    conversion = json.loads(meta["sd1kit.conversion"])
    assert conversion["dtype"] == "fp16" and "old CLIP layout (no text_model.)" in conversion["fixed"]
    assert conversion["dropped_training_state"] == ["global_step"]


@pytest.mark.parametrize("mode", ["use", "drop", "keep"])
def test_ema_modes(tiny_models, tmp_path, cli, mode):
    src = tiny_models["wd"]
    out = tmp_path / f"wd-{mode}.safetensors"
    assert cli("convert", src, out, "--ema", mode).code == 0
    sd, original = load_file(str(out)), open_source(src).load_state_dict()
    key = UNET_PREFIX + "middle_block.1.proj_in.weight"
    has_ema = any(k.startswith(EMA_PREFIX) for k in sd)
    assert has_ema == (mode == "keep")
    expected = original[ema_name(key)] if mode == "use" else original[key]
    assert torch.equal(sd[key], expected)


def test_ema_use_without_ema_is_an_error(tiny_models, tmp_path, cli):
    out = tmp_path / "x.safetensors"
    result = cli("convert", tiny_models["sd15"], out, "--ema", "use")
    assert result.code != 0 and "no EMA copy" in result.err and not out.exists()


def test_v_prediction_carried_in_metadata_and_yaml(tiny_models, tmp_path, cli):
    out = tmp_path / "ef.safetensors"
    assert cli("convert", tiny_models["easyfluff"], out, "--markers").code == 0
    assert out.with_suffix(".yaml").read_text() == tiny_models["easyfluff"].with_suffix(".yaml").read_text()
    out.with_suffix(".yaml").unlink()
    r = cli("inspect", "--json", out).json()[0]
    assert r["prediction"] == "v" and r["prediction_source"] in ("metadata", "marker")
    assert "v_pred" in load_file(str(out))


def test_diffusers_folder_to_single_file_equals_ldm_file(tiny_models, tmp_path, cli):
    out = tmp_path / "from-folder.safetensors"
    assert cli("convert", tiny_models["diffusers"], out, "--dtype", "fp16").code == 0
    a = load_file(str(out))
    b = open_source(tiny_models["sd15"]).load_state_dict()  # same seed, written as an fp16 LDM file
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_to_overwrite_input(copy_model, cli):
    src = copy_model("sd15")
    before = src.read_bytes()
    result = cli("convert", src, src)
    assert result.code != 0 and "refusing to overwrite an input" in result.err
    assert src.read_bytes() == before


def test_ckpt_to_safetensors_beside_the_same_yaml(tmp_path, cli):
    """model.ckpt + model.yaml -> model.safetensors: the yaml already applies to the new file and is kept as is."""
    from sd1kit.dev.tiny import write_tiny_model

    src = write_tiny_model(tmp_path / "fluffy.ckpt", layout="nai", prediction="v")
    yaml_before = src.with_suffix(".yaml").read_bytes()
    out = tmp_path / "fluffy.safetensors"
    result = cli("convert", src, out)
    assert result.code == 0, result.err
    assert src.with_suffix(".yaml").read_bytes() == yaml_before
    r = cli("inspect", "--json", out).json()[0]
    assert (r["prediction"], r["prediction_source"]) == ("v", "yaml")


def test_failed_convert_writes_nothing(tiny_models, tmp_path, cli):
    out = tmp_path / "out.safetensors"
    result = cli("convert", tiny_models["sd15"], out, "--ema", "use")
    assert result.code != 0 and list(tmp_path.iterdir()) == [tmp_path / "cache"] or not list(tmp_path.glob("*.safetensors"))


def test_output_must_be_safetensors(tiny_models, tmp_path, cli):
    result = cli("convert", tiny_models["sd15"], tmp_path / "out.ckpt")
    assert result.code != 0 and "must be a .safetensors" in result.err
