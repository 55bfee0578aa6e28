"""Header-only manifests of full-size SD1 files: the real key names and shapes, no weights.

Built from meta-device modules of the full SD1 configs, so detection and config inference are tested on
real shapes; `write_header_only` writes them as a valid safetensors file whose data section is sparse
(a 2 GB file that takes no disk space and reads as zeros).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

from sd1kit.formats.keys.ldm import POSITION_IDS
from sd1kit.formats.safetensors_io import DTYPE_SIZES, TensorInfo
from sd1kit.formats.source import TORCH_TO_ST_DTYPE
from sd1kit.models.build import SD1Modules, build_text_encoder, build_unet, build_vae, modules_to_ldm
from sd1kit.models.configs import SD1_TEXT_ENCODER, SD1_UNET, SD1_VAE, UNetConfig


def sd1_manifest(dtype: str = "F16", unet: UNetConfig = SD1_UNET, position_ids: bool = True) -> dict[str, TensorInfo]:
    """Key -> TensorInfo of a full-size SD1 checkpoint (UNet + VAE + CLIP-L), e.g. v1-5-pruned-emaonly fp16."""
    with torch.device("meta"):
        modules = SD1Modules(build_unet(unet), build_vae(SD1_VAE), build_text_encoder(SD1_TEXT_ENCODER),
                             unet, SD1_VAE, SD1_TEXT_ENCODER)
    shapes = {k: (tuple(v.shape), TORCH_TO_ST_DTYPE[str(v.dtype)]) for k, v in modules_to_ldm(modules).items()}
    if position_ids:
        shapes[POSITION_IDS] = ((1, 77), "I64")
    return infos_from_shapes({name: (shape, dtype if own.startswith("F") else own) for name, (shape, own) in shapes.items()})


def infos_from_shapes(shapes: dict[str, tuple], dtype: str = "F16") -> dict[str, TensorInfo]:
    """Lay tensors out one after another: name -> shape, or name -> (shape, dtype)."""
    infos, offset = {}, 0
    for name, spec in shapes.items():
        shape, dt = spec if len(spec) == 2 and isinstance(spec[1], str) else (spec, dtype)
        size = DTYPE_SIZES[dt] * math.prod(shape)
        infos[name] = TensorInfo(dt, tuple(shape), offset, offset + size)
        offset += size
    return infos


def write_header_only(path: str | Path, infos: dict[str, TensorInfo], metadata: dict[str, str] | None = None) -> Path:
    """A valid safetensors file with these tensors; the data section is a hole (sparse, all zeros)."""
    header = {name: {"dtype": i.dtype, "shape": list(i.shape), "data_offsets": [i.begin, i.end]}
              for name, i in infos.items()}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    data_size = max((i.end for i in infos.values()), default=0)
    path = Path(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_size)
    return path


def write_random_checkpoint(path: str | Path, seed: int = 0) -> int:
    """A full-size SD1.5 checkpoint with random weights (std 0.02), fp16 as A1111's pruned files, streamed to disk
    tensor by tensor; returns its size. For benchmarks: the cost of real weights, none of their content."""
    from sd1kit.formats.safetensors_io import TORCH_DTYPES, write_safetensors_stream

    infos = sd1_manifest("F16", position_ids=False)
    g = torch.Generator().manual_seed(seed)

    def produce(name: str) -> torch.Tensor:
        info = infos[name]
        return (torch.randn(info.shape, generator=g) * 0.02).to(getattr(torch, TORCH_DTYPES[info.dtype]))

    write_safetensors_stream(path, [(n, i.dtype, i.shape) for n, i in infos.items()], produce)
    return Path(path).stat().st_size
