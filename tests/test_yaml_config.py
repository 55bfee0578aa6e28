"""Sidecar yaml configs are data: safe loader, whitelisted keys, `!!python` tags never instantiate anything."""

from __future__ import annotations

import pytest

from sd1kit.dev.tiny import v1_inference_yaml
from sd1kit.errors import BadFileError
from sd1kit.formats.yaml_config import read_yaml_config


def test_v1_inference_is_epsilon(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(v1_inference_yaml())
    cfg = read_yaml_config(path)
    assert cfg.prediction == "epsilon" and cfg.use_ema is False and cfg.scale_factor == 0.18215
    assert "ldm.models.diffusion.ddpm.LatentDiffusion" in cfg.ignored_targets


def test_v_prediction_and_clip_skip(tmp_path):
    path = tmp_path / "m.yaml"
    text = v1_inference_yaml(v_prediction=True).replace(
        "      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder\n",
        "      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder\n      params:\n        layer_idx: -2\n")
    path.write_text(text)
    cfg = read_yaml_config(path)
    assert cfg.prediction == "v" and cfg.clip_skip == 2


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
])
def test_python_tags_are_refused_without_running(tmp_path, tag):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text("model:\n  params:\n    parameterization: " + tag.format(marker=marker) + "\n")
    with pytest.raises(BadFileError, match="not a plain-data yaml") as e:
        read_yaml_config(path)
    assert str(path) in str(e.value) and not marker.exists()


def test_bad_parameterization(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("model:\n  params:\n    parameterization: x0\n")
    with pytest.raises(BadFileError, match="parameterization"):
        read_yaml_config(path)


def test_evil_yaml_beside_checkpoint_fails_cleanly(copy_model, cli):
    path = copy_model("sd15")
    path.with_suffix(".yaml").write_text("model: !!python/object/apply:os.system ['echo hi']\n")
    result = cli("inspect", path)
    assert result.code != 0 and str(path.with_suffix(".yaml")) in result.err and "Traceback" not in result.err
