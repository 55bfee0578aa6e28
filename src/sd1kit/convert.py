"""`sd1kit convert`: any SD1-family file -> a clean canonical .safetensors (training state dropped, key quirks
fixed, EMA used/dropped/kept, optional dtype), written atomically with its provenance in the metadata, and with
sd1kit's own yaml beside it where the output needs one (formats.yaml_config.write_output_yaml), never a copy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.formats.atomic import same_file
from sd1kit.formats.hashes import file_hashes
from sd1kit.formats.keys.ldm import EMA_PREFIX, SCHEDULE_BUFFERS, UNET_PREFIX, ema_name
from sd1kit.formats.safetensors_io import write_safetensors
from sd1kit.formats.yaml_config import in_channels_of, write_output_yaml
from sd1kit.report import inspect_path

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
EMA_MODES = ("use", "drop", "keep")
CONVERTIBLE_KINDS = ("checkpoint", "unet", "vae", "text_encoder")


@dataclass
class ConvertResult:
    out: Path
    tensors: int
    metadata: dict[str, str]
    yaml: Path | None


def _apply_ema(sd: dict, mode: str, where: Path) -> dict:
    if mode == "keep":
        return sd
    if mode == "use":
        unet_keys = [k for k in sd if k.startswith(UNET_PREFIX)]
        missing = [k for k in unet_keys if ema_name(k) not in sd]
        if not unet_keys or missing:
            raise Sd1kitError(where, f"--ema use: the file has no EMA copy of {len(missing) or 'its'} UNet weights")
        sd = {**sd, **{k: sd[ema_name(k)] for k in unet_keys}}
    return {k: v for k, v in sd.items() if not k.startswith(EMA_PREFIX)}


def _cast(sd: dict, dtype: torch.dtype | None) -> dict:
    if dtype is None:
        return sd
    # Schedule buffers stay fp32: rounding alphas_cumprod changes every seed (A1111's "Downcast alphas_cumprod").
    return {k: v.to(dtype) if v.is_floating_point() and k not in SCHEDULE_BUFFERS else v for k, v in sd.items()}


def convert(src: str | Path, out: str | Path, dtype: str | None = None, ema: str = "drop",
            prediction: str | None = None, ztsnr: bool | None = None, markers: bool = False) -> ConvertResult:
    src, out = Path(src), Path(out)
    if out.suffix.lower() != ".safetensors":
        raise Sd1kitError(out, "output must be a .safetensors file")
    if dtype is not None and dtype not in DTYPES:
        raise Sd1kitError("--dtype", f"must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if ema not in EMA_MODES:
        raise Sd1kitError("--ema", f"must be one of {', '.join(EMA_MODES)}, not {ema!r}")
    ins = inspect_path(src, prediction=prediction, ztsnr=ztsnr, hashes=False)
    yaml_in = ins.detection.yaml.path if ins.detection.yaml else None
    if any(same_file(i, out) for i in [src, *ins.source.files, *([yaml_in] if yaml_in else [])]):
        raise Sd1kitError(out, "refusing to overwrite an input file")
    if ins.refusal:
        raise Sd1kitError(src, ins.refusal)
    d = ins.detection
    if d.kind not in CONVERTIBLE_KINDS:
        raise Sd1kitError(src, f"a {d.kind} file: convert handles checkpoints, UNets, VAEs and text encoders")
    if not out.parent.is_dir():
        raise Sd1kitError(out, "output folder does not exist")
    sd = _cast(_apply_ema(ins.source.load_state_dict(), ema, src), DTYPES.get(dtype))
    if markers and d.prediction == "v":
        sd["v_pred"] = torch.zeros(0)
    if markers and d.zero_terminal_snr:
        sd["ztsnr"] = torch.zeros(0)
    sources = ins.source.files if ins.source.path.is_dir() else [src]
    metadata = {
        **ins.source.metadata,
        "sd1kit.version": __version__,
        "sd1kit.source": src.name,
        "sd1kit.source_sha256": ",".join(file_hashes(f).sha256 for f in sources),
        "sd1kit.conversion": json.dumps({"from": ins.source.container, "dtype": dtype or "unchanged", "ema": ema,
                                         "fixed": ins.source.quirks, "dropped_training_state": ins.source.training_state}),
    }
    if d.kind in ("checkpoint", "unet"):
        metadata["sd1kit.prediction"] = d.prediction
        metadata["sd1kit.zero_terminal_snr"] = "true" if d.zero_terminal_snr else "false"
    write_safetensors(out, sd, metadata)
    return ConvertResult(out, len(sd), metadata, write_output_yaml(
        out, d.prediction if d.kind in ("checkpoint", "unet") else None, in_channels_of(ins.source.shapes), yaml_in))
