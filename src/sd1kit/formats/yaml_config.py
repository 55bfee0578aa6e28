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
