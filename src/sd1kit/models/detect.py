"""Header-only detection: what a file is and how to run it, from key names, shapes and dtypes (no tensor data)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.formats.keys.ldm import COMPONENT_PREFIXES, EMA_BOOKKEEPING, EMA_PREFIX
from sd1kit.formats.source import ModelSource, sidecar_yaml_path
from sd1kit.formats.yaml_config import YamlConfig, read_yaml_config
from sd1kit.models import configs
from sd1kit.models.families import FAMILIES, KINDS, match_one, match_variant
from sd1kit.models.features import header_features

PREDICTIONS = ("epsilon", "v")
_TRUE = ("1", "true", "yes", "on")
# safetensors __metadata__ keys that state the prediction type / zero terminal SNR, as various trainers write them.
PREDICTION_METADATA = {
    "sd1kit.prediction": lambda v: "v" if v.lower() == "v" else "epsilon" if v.lower() in ("eps", "epsilon") else None,
    "modelspec.prediction_type": lambda v: "v" if v.lower() == "v" else "epsilon" if v.lower() in ("eps", "epsilon") else None,
    "ss_v_parameterization": lambda v: "v" if v.lower() in _TRUE else None,
}
ZTSNR_METADATA = ("sd1kit.zero_terminal_snr", "ss_zero_terminal_snr", "modelspec.zero_terminal_snr")


@dataclass
class Detection:
    kind: str
    family: str
    variant: str | None
    prediction: str
    prediction_source: str  # override | yaml | metadata | marker | default
    zero_terminal_snr: bool
    zero_terminal_snr_source: str
    has_ema: bool
    ema_params: int
    components: dict[str, dict]
    dtypes: dict[str, int]
    adapter_algorithms: list[str]
    unet_config: configs.UNetConfig | None = None
    vae_config: configs.VAEConfig | None = None
    text_encoder_config: configs.TextEncoderConfig | None = None
    yaml: YamlConfig | None = None
    problems: list[str] = field(default_factory=list)


def resolve_prediction(override: str | None, yaml: YamlConfig | None, metadata: dict[str, str],
                       keys) -> tuple[str, str]:
    """Prediction type and where it came from: override, sidecar yaml, metadata, marker key, else default eps."""
    if override:
        return override, "override"
    if yaml is not None:
        return yaml.prediction, "yaml"
    for key, parse in PREDICTION_METADATA.items():
        if key in metadata and (value := parse(str(metadata[key]))):
            return value, "metadata"
    if "v_pred" in keys:
        return "v", "marker"
    return "epsilon", "default"


def resolve_ztsnr(override: bool | None, metadata: dict[str, str], keys) -> tuple[bool, str]:
    if override is not None:
        return override, "override"
    if "ztsnr" in keys:
        return True, "marker"
    for key in ZTSNR_METADATA:
        if key in metadata:
            return str(metadata[key]).lower() in _TRUE, "metadata"
    return False, "default"


def _components(source: ModelSource) -> dict[str, dict]:
    out = {}
    for name, prefix in COMPONENT_PREFIXES.items():
        infos = [i for k, i in source.tensors.items() if k.startswith(prefix)]
        dtypes = sorted({i.dtype for i in infos})
        out[name] = {"present": bool(infos), "params": sum(i.numel for i in infos),
                     "dtype": dtypes[0] if len(dtypes) == 1 else ("mixed" if dtypes else None)}
    return out


def _infer(fn, shapes, source: ModelSource, problems: list[str]):
    try:
        return fn(shapes, where=str(source.path))
    except Sd1kitError as e:
        problems.append(e.message)
        return None


def detect(source: ModelSource, prediction: str | None = None, ztsnr: bool | None = None,
           yaml_path: Path | None = None) -> Detection:
    """Detect kind, family, variant, prediction type and configs from a source's header."""
    if prediction is not None and prediction not in PREDICTIONS:
        raise Sd1kitError("--prediction", f"must be one of {', '.join(PREDICTIONS)}, not {prediction!r}")
    shapes = source.shapes
    features = header_features(shapes, source.top_level_keys)
    kind = match_one(KINDS, features) if source.safe else "unknown"
    family = match_one(FAMILIES, features) if kind != "unknown" else "unknown"
    yaml_path = yaml_path or sidecar_yaml_path(source.path)
    yaml = read_yaml_config(yaml_path) if yaml_path and kind in ("checkpoint", "unet") else None
    pred, pred_source = resolve_prediction(prediction, yaml, source.metadata, shapes)
    z, z_source = resolve_ztsnr(ztsnr, source.metadata, shapes)
    ema_keys = [k for k in shapes if k.startswith(EMA_PREFIX) and k not in EMA_BOOKKEEPING]
    dtypes: dict[str, int] = {}
    for info in source.tensors.values():
        dtypes[info.dtype] = dtypes.get(info.dtype, 0) + 1
    components = _components(source)
    problems: list[str] = []
    runnable = kind == "checkpoint" and family == "sd1"
    return Detection(
        kind=kind, family=family,
        variant=match_variant(features.unet_in_channels) if kind in ("checkpoint", "unet") else None,
        prediction=pred, prediction_source=pred_source, zero_terminal_snr=z, zero_terminal_snr_source=z_source,
        has_ema=bool(ema_keys), ema_params=sum(math.prod(shapes[k]) for k in ema_keys),
        components=components, dtypes=dict(sorted(dtypes.items())),
        adapter_algorithms=sorted(features.adapter_algorithms),
        unet_config=_infer(configs.infer_unet_config, shapes, source, problems)
        if runnable and components["unet"]["present"] else None,
        vae_config=_infer(configs.infer_vae_config, shapes, source, problems)
        if runnable and components["vae"]["present"] else None,
        text_encoder_config=_infer(configs.infer_text_encoder_config, shapes, source, problems)
        if runnable and components["text_encoder"]["present"] else None,
        yaml=yaml, problems=problems,
    )
