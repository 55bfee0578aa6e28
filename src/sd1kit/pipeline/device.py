"""Which device and compute precision to run on: `--device auto` takes CUDA when present; `--dtype auto` takes
bf16 on CPUs with bf16 dot products (AVX512-BF16 or AMX: 1.5-1.7x per UNet step on the reference machine,
bench/perf.py), fp16 on CUDA, fp32 elsewhere."""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_device(name: str = "auto") -> str:
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def auto_dtype(device: str) -> tuple[str, str]:
    """`--dtype auto` on `device`: the precision's name and why."""
    if device.startswith("cuda"):
        return "fp16", "auto: CUDA"
    if cpu_has_bf16():
        return "bf16", "auto: this CPU has bf16 dot products"
    return "fp32", "auto: this CPU has no bf16 dot products"


def pick_dtype(name: str, device: str) -> torch.dtype:
    return DTYPES[auto_dtype(device)[0] if name == "auto" else name]


def compute_dtype(module: torch.nn.Module) -> torch.dtype:
    """The precision a module computes in: its weights' dtype, or under --low-memory's layerwise casting the
    dtype its layers are cast to while they run."""
    for layer in module.modules():
        registry = getattr(layer, "_diffusers_hook", None)
        hook = registry.get_hook("layerwise_casting") if registry is not None else None
        if hook is not None:
            return hook.compute_dtype
    return next(module.parameters()).dtype


def return_freed_memory() -> None:
    """--low-memory: have glibc serve blocks of 1 MiB and more by mmap, so that freed tensors (and layerwise
    casting frees one per layer per step) go back to the system instead of fragmenting the heap: 0.5 GiB less peak
    RSS for a 512x512 picture (bench/perf.py). A no-op where the C library is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD; setting it also stops glibc's dynamic raising of it
    except (OSError, AttributeError):
        pass


def trim_heap() -> None:
    """gc, then glibc's `malloc_trim(0)` (where there is a glibc): the C heap's freed pages go back to the system
    (after an OpenVINO load drops the file's torch modules, ~0.8 GiB; after a failed server job, its tensors)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass
