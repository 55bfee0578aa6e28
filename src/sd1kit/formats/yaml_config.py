"""LDM yaml configs beside a checkpoint, read as data, and the yaml sd1kit writes beside its own outputs.

A yaml beside a checkpoint is what A1111 (`OmegaConf.load` + `instantiate_from_config`) and LDM's scripts turn
into objects: every `target:` names a class they import and call with `params:`. So a yaml is accepted only when
it is the plain data an SD1 config is: no anchors or aliases (the YAML 1.1 spec, §3.2.2.2 / billion laughs),
at most MAX_YAML_DEPTH levels and MAX_YAML_EVENTS parser events (checked on the parser's event stream, which
PyYAML produces without recursion, before anything is built), safe_load's plain types only, every `target:` one
of the classes real SD1 configs name (SD1_CLASSES), and none of the keys other frameworks instantiate from
(hydra's `_target_`, lightning's `class_path`). Nothing is ever imported.

Outputs never get a copy of an input's yaml: `write_output_yaml` writes sd1kit's own (A1111's v1-inference.yaml,
or the inpainting / instruct-pix2pix one by the UNet's input channels, with `parameterization: "v"` when asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from sd1kit.errors import BadFileError

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64  # v1-inference.yaml nests 6 levels
MAX_YAML_EVENTS = 20_000  # v1-inference.yaml is about 200 parser events
TOO_DEEP = f"yaml nested deeper than {MAX_YAML_DEPTH} levels: not an LDM config"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: the same events, faster

# The `target:` classes of the SD1 configs in use: CompVis/stable-diffusion configs/stable-diffusion/
# v1-inference.yaml (and the v-prediction copy EasyFluff and other v-models ship), runwayml's
# v1-inpainting-inference.yaml, A1111's configs/instruct-pix2pix.yaml (its data: section included),
# timothybrooks/instruct-pix2pix train.yaml, lllyasviel/ControlNet models/cldm_v15.yaml, and the training
# configs of CompVis/latent-diffusion (schedulers, the autoencoder's loss).
SD1_CLASSES = frozenset({
    "ldm.models.diffusion.ddpm.LatentDiffusion",
    "ldm.models.diffusion.ddpm.LatentInpaintDiffusion",
    "ldm.models.diffusion.ddpm_edit.LatentDiffusion",
    "modules.models.diffusion.ddpm_edit.LatentDiffusion",
    "ldm.modules.diffusionmodules.openaimodel.UNetModel",
    "ldm.models.autoencoder.AutoencoderKL",
    "ldm.modules.encoders.modules.FrozenCLIPEmbedder",
    "ldm.modules.encoders.modules.FrozenCLIPTextEmbedder",
    "ldm.modules.losses.LPIPSWithDiscriminator",
    "ldm.lr_scheduler.LambdaLinearScheduler",
    "ldm.lr_scheduler.LambdaWarmUpCosineScheduler",
    "cldm.cldm.ControlLDM",
    "cldm.cldm.ControlNet",
    "cldm.cldm.ControlledUnetModel",
    "torch.nn.Identity",
    "main.DataModuleFromConfig",
    "edit_dataset.EditDataset",
})
# keys that make other config systems import and call what they name: hydra.utils.instantiate (`_target_`),
# Lightning CLI / jsonargparse (`class_path`), and `__class__`-style object hooks
INSTANTIATING_KEYS = ("_target_", "class_path", "__class__")


@dataclass(frozen=True)
class YamlConfig:
    path: Path
    prediction: str  # "epsilon" | "v"
    use_ema: bool | None
    clip_skip: int | None  # from cond_stage_config.params.layer_idx (ComfyUI honours it)
    scale_factor: float | None
    ignored_targets: tuple[str, ...]  # `target:` classes named in the file (all in SD1_CLASSES), never imported


def read_yaml_config(path: str | Path) -> YamlConfig:
    """The settings an LDM config gives a checkpoint, from a yaml that passed every check above."""
    path = Path(path)
    data = load_plain_yaml(path)
    targets = _check_classes(path, data)
    params = _dig(data, "model", "params")
    if not isinstance(params, dict):
        raise BadFileError(path, "yaml config without model.params: not an LDM config")
    parameterization = params.get("parameterization", "eps")
    if not isinstance(parameterization, str) or parameterization.strip().lower() not in ("eps", "v", "epsilon"):
        raise BadFileError(path, f"model.params.parameterization {_short(parameterization)} is neither 'eps' nor 'v'")
    layer_idx = _dig(params, "cond_stage_config", "params", "layer_idx")
    scale = params.get("scale_factor")
    use_ema = params.get("use_ema")
    return YamlConfig(
        path=path,
        prediction="v" if parameterization.strip().lower() == "v" else "epsilon",
        use_ema=use_ema if isinstance(use_ema, bool) else None,
        clip_skip=-layer_idx if _is_int(layer_idx) and -1000 < layer_idx < 0 else None,
        scale_factor=float(scale) if _is_number(scale) else None,
        ignored_targets=tuple(sorted(set(targets))),
    )


def load_plain_yaml(path: Path):
    """The yaml's data, once its event stream has shown it bounded and alias-free; BadFileError otherwise."""
    text = _read_text(path)
    try:
        _check_events(path, text)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader: plain types only
    except yaml.YAMLError as e:
        if "nesting depth" in str(getattr(e, "problem", "")):  # libyaml's own limit, met while scanning ahead
            raise BadFileError(path, TOO_DEEP) from None
        # `!!python/object` and other unsafe tags land here: safe loaders refuse to construct them.
        raise BadFileError(path, f"not a plain-data yaml config ({_yaml_problem(e)})") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # plain-type constructors can still refuse a value (an int of 5000 digits, a timestamp of month 13)
        raise BadFileError(path, f"not a plain-data yaml config ({e.__class__.__name__}: {str(e)[:120]})") from None


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise BadFileError(path, f"unreadable yaml config ({e.strerror or e})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise BadFileError(path, "yaml config larger than 1 MiB: not an LDM config")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadFileError(path, f"unreadable yaml config (not UTF-8: {e.reason} at byte {e.start})") from None


def _check_events(path: Path, text: str) -> None:
    """Refuse anchors/aliases, nesting past MAX_YAML_DEPTH and more than MAX_YAML_EVENTS events, reading the
    parser's events one at a time (nothing is composed or constructed yet, so nothing can recurse or expand)."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_LOADER), 1):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise BadFileError(path, "yaml anchors/aliases (&name, *name) are not part of an SD1 config: refused "
                                     "(they can make a small file expand without bound)")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise BadFileError(path, TOO_DEEP)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if count > MAX_YAML_EVENTS:
            raise BadFileError(path, f"yaml of more than {MAX_YAML_EVENTS} nodes: not an LDM config")


def _check_classes(path: Path, data) -> list[str]:
    """Every `target:` must be an SD1 class, and no key other frameworks instantiate from may appear."""
    targets = []
    for where, key, value in _entries(data):
        if key in INSTANTIATING_KEYS:
            raise BadFileError(path, f"{where}: {_short(value)} is not an SD1 class (SD1 configs name classes "
                                     f"by target:, never by {key}, which hydra / lightning instantiate)")
        if key == "target":
            if not (isinstance(value, str) and value in SD1_CLASSES):
                raise BadFileError(path, f"{where}: {_short(value)} is not an SD1 class")
            targets.append(value)
    return targets


def _entries(data):
    """(key path, key, value) of every mapping entry, parents before children, walked without recursion."""
    stack = [("", data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            children = [(_join(where, k), k, v) for k, v in node.items()]
            yield from children
        elif isinstance(node, list):
            children = [(f"{where}[{i}]", None, v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend((w, v) for w, _, v in reversed(children) if isinstance(v, (dict, list)))


def _join(where: str, key) -> str:
    part = key if isinstance(key, str) else repr(key)
    path = f"{where}.{part}" if where else part
    return path if len(path) <= 200 else "..." + path[-197:]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300  # float() fits


def _dig(data, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A parser error in one line: its context and problem, and the line it is at."""
    parts = [p for p in (getattr(e, "context", None), getattr(e, "problem", None)) if p]
    text = ": ".join(parts) or (str(e).splitlines()[0] if str(e) else e.__class__.__name__)
    mark = getattr(e, "problem_mark", None)
    return (text + (f" (line {mark.line + 1})" if mark is not None else ""))[:160]


# --- the yaml sd1kit writes ---

V_PREDICTION_YAML_LINE = '    parameterization: "v"\n'
# (text in V1_INFERENCE_YAML, replacement) per UNet input width: runwayml's v1-inpainting-inference.yaml (9) and
# A1111's configs/instruct-pix2pix.yaml (8) differ from v1-inference.yaml in these lines only (as far as
# loading is concerned)
_UNET_IN = "        in_channels: 4\n        out_channels: 4\n"
_VARIANT_LINES = {
    9: (("  target: ldm.models.diffusion.ddpm.LatentDiffusion\n",
         "  target: ldm.models.diffusion.ddpm.LatentInpaintDiffusion\n"),
        ("    conditioning_key: crossattn\n", "    conditioning_key: hybrid\n")),
    8: (("  target: ldm.models.diffusion.ddpm.LatentDiffusion\n",
         "  target: modules.models.diffusion.ddpm_edit.LatentDiffusion\n"),
        ('    first_stage_key: "jpg"\n    cond_stage_key: "txt"\n',
         "    first_stage_key: edited\n    cond_stage_key: edit\n"),
        ("    conditioning_key: crossattn\n", "    conditioning_key: hybrid\n")),
}


def sd1_yaml(prediction: str = "epsilon", in_channels: int = 4) -> str:
    """The LDM config of an SD1 model: A1111's v1-inference.yaml (the keys that matter), its inpainting or
    instruct-pix2pix form by the UNet's input channels, with `parameterization: "v"` for v-prediction."""
    text = V1_INFERENCE_YAML
    for old, new in _VARIANT_LINES.get(in_channels, ()):
        text = text.replace(old, new, 1)
    if in_channels != 4:
        text = text.replace(_UNET_IN, _UNET_IN.replace(": 4\n", f": {int(in_channels)}\n", 1), 1)
    if prediction == "v":
        text = text.replace("  params:\n", "  params:\n" + V_PREDICTION_YAML_LINE, 1)
    return text


def v1_inference_yaml(v_prediction: bool = False) -> str:
    """A1111's configs/v1-inference.yaml (the keys that matter), plus the v-prediction line when asked."""
    return sd1_yaml("v" if v_prediction else "epsilon")


def in_channels_of(shapes: dict) -> int | None:
    """The UNet's input channels (conv_in's second dimension): 4 txt2img, 9 inpainting, 8 instruct-pix2pix."""
    shape = shapes.get(CONV_IN)
    return int(shape[1]) if shape is not None and len(shape) == 4 else None


def write_output_yaml(model_out: Path, prediction: str | None, in_channels: int | None,
                      input_yaml: Path | None) -> Path | None:
    """sd1kit's own yaml beside an output model, never a copy of the input's (`input_yaml`, already checked by
    read_yaml_config). Written for a v-prediction model (A1111 and ComfyUI cannot tell v from the weights) and
    wherever the input had one; none for files that are not whole models (prediction None) or for epsilon models
    that came without one. Where the output's yaml is the input's own (model.ckpt -> model.safetensors beside
    model.yaml), that file is left as it is. Returns the yaml beside the output, or None."""
    from sd1kit.formats.atomic import same_file, write_bytes_atomic

    target = Path(model_out).with_suffix(".yaml")
    if input_yaml is not None and same_file(Path(input_yaml), target):
        return target
    if prediction is None or (prediction != "v" and input_yaml is None):
        return None
    write_bytes_atomic(target, sd1_yaml(prediction, in_channels or 4).encode("utf-8"))
    return target


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
