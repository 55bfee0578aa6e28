"""An upscaler file read safely and built by spandrel, the last one kept.

The weights are read by sd1kit's own loaders: `.pth` / `.pt` / `.ckpt` through `formats.ckpt.load_torch_file`
(every pickle scanned first, code refused before anything is unpickled), `.safetensors` through its validated
header and `safetensors.torch.load_file`. The wrappers real files have are unwrapped (`params_ema` in Real-ESRGAN's
and SwinIR's, `params` in realesr-general's and DAT's, `state_dict` / `model` elsewhere, a `module.` prefix), then
`spandrel.ModelLoader().load_from_state_dict` detects the architecture and its hyper-parameters. A file spandrel
does not recognise, or a model that is not a 3-channel image-to-image one (an inpainter, a face restorer), is one
line naming the file. The model runs in float32, in eval mode, on the CPU unless a device is given.

The last model loaded is kept (keyed by the file's path, size and modification time, and the device), so hires
fix over a batch, or Extras over many pictures, loads it once.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.upscalers.names import UpscalerFile
from sd1kit.upscalers.spandrel_import import import_spandrel

WRAPPERS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net", "netG")
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
PURPOSES = ("SR", "Restoration")  # image to image; "FaceSR" (GFPGAN ...) works on face crops, not pictures
_LOCK = threading.Lock()
_LAST: list = []  # [(key, descriptor)] of the last model loaded


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[0] if lines else e.__class__.__name__)[:200]


def _read(path: Path) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        from sd1kit.formats.safetensors_io import read_header

        read_header(path)  # refuses a lying or oversized header before the library reads it
        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001 - the library's own complaint, in one line
            raise Sd1kitError(path, f"unreadable safetensors file ({_first_line(e)})") from None
    if suffix in TORCH_SUFFIXES:
        from sd1kit.formats.ckpt import load_torch_file

        return load_torch_file(path)
    raise Sd1kitError(path, f"not an upscaler file (expected .pth, .pt or .safetensors, not {suffix or 'no suffix'})")


def state_dict_of(path: str | Path) -> dict:
    """The tensors of an upscaler file, unwrapped as spandrel expects them."""
    import torch

    path = Path(path)
    data = _read(path)
    for _ in range(2):  # e.g. {"params_ema": {...}}, or {"state_dict": {"model": ...}}
        if not isinstance(data, dict):
            break
        inner = next((data[k] for k in WRAPPERS if isinstance(data.get(k), dict)), None)
        if inner is None:
            break
        data = inner
    if not isinstance(data, dict):
        raise Sd1kitError(path, f"not an upscaler's weights (a {type(data).__name__}, not a dict of tensors)")
    tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise Sd1kitError(path, "no weights in this file (no tensors after unwrapping params_ema / params)")
    for prefix in ("module.", "netG."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def build_model(path: str | Path, device: str = "cpu"):
    """spandrel's ImageModelDescriptor for the file, float32, eval mode, on `device`."""
    path = Path(path)
    spandrel = import_spandrel()
    tensors = state_dict_of(path)
    try:
        model = spandrel.ModelLoader(device="cpu").load_from_state_dict(tensors)
    except spandrel.UnsupportedModelError:
        raise Sd1kitError(path, "not an upscaler spandrel knows: no architecture it has matches these weights' "
                                "keys") from None
    except Sd1kitError:
        raise
    except Exception as e:  # noqa: BLE001 - spandrel failing on odd shapes is the file's problem, one line
        raise Sd1kitError(path, f"spandrel could not build this model ({e.__class__.__name__}: "
                                f"{_first_line(e)})") from None
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.purpose not in PURPOSES:
        raise Sd1kitError(path, f"a {model.architecture.name} {model.purpose} model, not a picture upscaler")
    if model.input_channels != 3 or model.output_channels != 3:
        raise Sd1kitError(path, f"a {model.architecture.name} model for {model.input_channels}-channel pictures, "
                                "not RGB")
    return model.float().eval().to(device)


def _key(path: Path, device: str) -> tuple:
    try:
        stat = path.stat()
    except OSError:
        raise Sd1kitError(path, "the upscaler's file is gone (removed or renamed?)") from None
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device)


def load_upscaler(upscaler: UpscalerFile | str | Path, device: str | None = None):
    """The upscaler's model, loaded once for as long as it stays the last one asked for."""
    path = Path(upscaler.path if isinstance(upscaler, UpscalerFile) else upscaler)
    device = device or "cpu"
    with _LOCK:
        key = _key(path, device)
        if _LAST and _LAST[0][0] == key:
            return _LAST[0][1]
        _LAST.clear()  # the previous model is freed before the next is built
        model = build_model(path, device)
        _LAST.append((key, model))
        return model


def forget_loaded() -> None:
    """Drop the kept model (frees its memory)."""
    with _LOCK:
        _LAST.clear()
