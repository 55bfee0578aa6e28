"""LDM yaml configs beside a checkpoint, read as data: safe loader, whitelisted keys, nothing instantiated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from sd1kit.errors import BadFileError

MAX_YAML_BYTES = 1 << 20


@dataclass(frozen=True)
class YamlConfig:
    path: Path
    prediction: str  # "epsilon" | "v"
    use_ema: bool | None
    clip_skip: int | None  # from cond_stage_config.params.layer_idx (ComfyUI honours it)
    scale_factor: float | None
    ignored_targets: tuple[str, ...]  # `target:` classes named in the file, never imported


def read_yaml_config(path: str | Path) -> YamlConfig:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise BadFileError(path, "yaml config larger than 1 MiB: not an LDM config")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        # `!!python/object` and other unsafe tags land here: safe_load refuses to construct them.
        raise BadFileError(path, f"not a plain-data yaml config ({_yaml_problem(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadFileError(path, f"unreadable yaml config ({e})") from None
    params = _dig(data, "model", "params")
    if not isinstance(params, dict):
        raise BadFileError(path, "yaml config without model.params: not an LDM config")
    parameterization = str(params.get("parameterization", "eps")).strip().lower()
    if parameterization not in ("eps", "v", "epsilon"):
        raise BadFileError(path, f"model.params.parameterization {parameterization!r} is neither 'eps' nor 'v'")
    layer_idx = _dig(params, "cond_stage_config", "params", "layer_idx")
    scale = params.get("scale_factor")
    use_ema = params.get("use_ema")
    return YamlConfig(
        path=path,
        prediction="v" if parameterization == "v" else "epsilon",
        use_ema=use_ema if isinstance(use_ema, bool) else None,
        clip_skip=abs(layer_idx) if isinstance(layer_idx, int) and layer_idx < 0 else None,
        scale_factor=float(scale) if isinstance(scale, (int, float)) else None,
        ignored_targets=tuple(sorted(set(_targets(data)))),
    )


def _dig(data, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _targets(data):
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "target" and isinstance(value, str):
                yield value
            else:
                yield from _targets(value)
    elif isinstance(data, list):
        for item in data:
            yield from _targets(item)


def _yaml_problem(e: yaml.YAMLError) -> str:
    return str(e).splitlines()[0][:160] if str(e) else e.__class__.__name__


V_PREDICTION_YAML_LINE = '    parameterization: "v"\n'


def v1_inference_yaml(v_prediction: bool = False) -> str:
    """A1111's configs/v1-inference.yaml (the keys that matter), plus the v-prediction line when asked."""
    text = V1_INFERENCE_YAML
    if v_prediction:
        text = text.replace("  params:\n", "  params:\n" + V_PREDICTION_YAML_LINE, 1)
    return text


V1_INFERENCE_YAML = """model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 64
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False

    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_heads: 8
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: 768
        use_checkpoint: True
        legacy: False

    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult: [ 1, 2, 4, 4 ]
          num_res_blocks: 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity

    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
"""
