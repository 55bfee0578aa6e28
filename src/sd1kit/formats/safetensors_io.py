"""safetensors: header-only reads that refuse lying headers, lazy tensor access, atomic writes.

Layout (formats.md §1): u64 little-endian header length N, N bytes of UTF-8 JSON, then tensor data.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from sd1kit.errors import BadFileError
from sd1kit.formats.atomic import atomic_path

# Bytes per element for every dtype the format defines.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
# sd1kit's own, tighter bounds: an SD1 checkpoint with EMA has ~3,000 tensors and a header under 1 MiB; a LoRA's
# kohya metadata (tag frequencies) stays within a few MiB. Past these a header only costs memory and time.
MAX_SD1_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 50_000
MAX_DIMS = 8
METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class TensorInfo:
    """What a header says of one tensor: dtype (safetensors spelling), shape, byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    begin: int = 0
    end: int = 0

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int  # absolute file offset of the first tensor byte (8 + N)
    file_size: int


def looks_like_safetensors(first_bytes: bytes) -> bool:
    return len(first_bytes) >= 10 and first_bytes[8:9] == b"{"


def read_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Read and validate a safetensors header without touching tensor data."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise BadFileError(path, f"not a safetensors file: only {size} bytes")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise BadFileError(path, f"not a safetensors file or truncated: header length {n} for a file of {size} bytes")
        if n > MAX_SD1_HEADER_BYTES:
            raise BadFileError(path, f"safetensors header of {n} bytes: larger than any SD1 model's "
                                     f"({MAX_SD1_HEADER_BYTES >> 20} MiB cap)")
        raw = f.read(n)
    header = _parse_header_json(path, raw)
    if len(header) > MAX_TENSORS + 1:
        raise BadFileError(path, f"safetensors header lists {len(header)} tensors: more than any SD1 model "
                                 f"({MAX_TENSORS} cap)")
    metadata = _read_metadata(path, header.pop(METADATA_KEY, None))
    tensors = {name: _tensor_info(path, name, entry) for name, entry in header.items()}
    _check_layout(path, tensors, size - 8 - n)
    return SafetensorsHeader(path, tensors, metadata, 8 + n, size)


def _parse_header_json(path: Path, raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise BadFileError(path, "safetensors header JSON nests too deep: refused") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadFileError(path, f"safetensors header is not valid JSON ({e.__class__.__name__})") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise BadFileError(path, f"safetensors header holds an unreadable number ({str(e)[:80]})") from None
    if not isinstance(header, dict):
        raise BadFileError(path, "safetensors header is not a JSON object")
    return header


def _read_metadata(path: Path, meta) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise BadFileError(path, "safetensors __metadata__ must map strings to strings")
    return meta


def _tensor_info(path: Path, name: str, entry) -> TensorInfo:
    if not isinstance(entry, dict):
        raise BadFileError(path, f"tensor {name!r}: header entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise BadFileError(path, f"tensor {name!r}: unknown dtype {str(dtype)[:40]!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(_is_count(d) for d in shape)):
        raise BadFileError(path, f"tensor {name!r}: bad shape {str(shape)[:80]}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)) or offsets[0] > offsets[1]:
        raise BadFileError(path, f"tensor {name!r}: bad data_offsets {str(offsets)[:80]}")
    info = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
    if info.numel * DTYPE_SIZES[dtype] != info.end - info.begin:
        raise BadFileError(
            path, f"tensor {name!r}: {dtype} {list(shape)} needs {info.numel * DTYPE_SIZES[dtype]} bytes "
                  f"but data_offsets give {info.end - info.begin}")
    return info


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path: Path, tensors: dict[str, TensorInfo], data_size: int) -> None:
    """Every tensor inside the data section, no two overlapping."""
    ranges = sorted((t.begin, t.end, name) for name, t in tensors.items() if t.end > t.begin)
    previous_end, previous_name = 0, None
    for begin, end, name in ranges:
        if end > data_size:
            raise BadFileError(path, f"tensor {name!r}: data_offsets end at {end}, past the {data_size} data bytes (truncated?)")
        if begin < previous_end:
            raise BadFileError(path, f"tensors {previous_name!r} and {name!r} overlap")
        previous_end, previous_name = end, name


TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64",
    "F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64", "U16": "uint16", "U32": "uint32",
    "U64": "uint64", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
}
TORCH_TO_ST_DTYPE = {f"torch.{v}": k for k, v in TORCH_DTYPES.items()}  # str(torch dtype) -> safetensors dtype


class LazyReader:
    """Tensors of a validated file, read one at a time with plain reads into fresh memory (no memory map:
    streaming a 2 GB file then costs one tensor of memory, not the file's size in mapped pages)."""

    def __init__(self, header: SafetensorsHeader):
        self.header = header

    def get(self, name: str):
        import torch

        info = self.header.tensors[name]
        buffer = bytearray(info.end - info.begin)
        with open(self.header.path, "rb") as f:
            f.seek(self.header.data_start + info.begin)
            if f.readinto(buffer) != len(buffer):
                raise BadFileError(self.header.path, f"tensor {name!r}: the file ends inside its data")
        dtype = getattr(torch, TORCH_DTYPES[info.dtype])
        if not buffer:
            return torch.empty(info.shape, dtype=dtype)
        return torch.frombuffer(buffer, dtype=dtype).reshape(info.shape)


def write_safetensors(target: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Write tensors atomically (temporary file + rename), in the order given, metadata keys sorted: the same
    tensors and metadata always give the same bytes (the safetensors library orders metadata by a hash map)."""
    entries = []
    for name, tensor in tensors.items():
        dtype = TORCH_TO_ST_DTYPE.get(str(tensor.dtype))
        if dtype is None:
            raise ValueError(f"{name}: {tensor.dtype} has no safetensors dtype")
        entries.append((name, dtype, tuple(tensor.shape)))
    write_safetensors_stream(target, entries, tensors.__getitem__, metadata)


def write_safetensors_stream(target: str | os.PathLike, entries: list[tuple[str, str, tuple[int, ...]]], produce,
                             metadata: dict[str, str] | None = None, finish=None) -> None:
    """Write tensors one at a time, atomically: `entries` lists (name, safetensors dtype, shape) in file order,
    `produce(name)` returns each tensor when its turn comes (so memory holds one tensor, not the model);
    `finish()` may still refuse (raise) before the file takes the target's name."""
    header: dict = {METADATA_KEY: dict(sorted(metadata.items()))} if metadata else {}
    offset = 0
    for name, dtype, shape in entries:
        size = math.prod(shape) * DTYPE_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the reference writer aligns the data section to 8 bytes
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, dtype, shape in entries:
            tensor = produce(name)
            if tuple(tensor.shape) != tuple(shape) or TORCH_TO_ST_DTYPE.get(str(tensor.dtype)) != dtype:
                raise ValueError(f"{name}: produced {tensor.dtype} {tuple(tensor.shape)}, declared {dtype} {shape}")
            f.write(tensor.contiguous().reshape(-1).view(torch_uint8()).numpy().data)  # no copy of the bytes
        if finish is not None:
            finish()


def torch_uint8():
    import torch

    return torch.uint8
