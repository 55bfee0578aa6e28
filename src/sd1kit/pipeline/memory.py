"""Will a job fit? The memory a generation adds on top of the loaded weights, estimated from the plan (UNet
activations per pass, the VAE decode, whole or in bands), against what the machine has free (MemAvailable, or the
cgroup's limit where it is lower). `check_room` refuses up front, in one line with the numbers, a job that would
not fit, instead of the kernel killing it midway; the decode goes to bands by itself when the whole one would not
fit (`decode_banded`).

The per-megapixel figures are the peaks measured by bench/vae_bands.py and bench/perf.py (full-size SD1.5, AMD EPYC
with AVX512-BF16, 2 threads), rounded down, so the estimate refuses only what surely does not fit."""

from __future__ import annotations

import os

from sd1kit.errors import Sd1kitError

GIB = 1 << 30
MP = 1 << 20
# GiB added per megapixel of the decoded picture (bench/vae_bands.py: 512x512 fp32 whole 0.99, banded 0.58;
# 1088x1088 fp32 whole 4.24, banded 2.49; bf16 whole 0.54 / 2.38, banded 0.39 / 1.45)
DECODE_GIB_PER_MP = {("fp32", False): 3.7, ("fp32", True): 2.1, ("bf16", False): 2.0, ("bf16", True): 1.2}
UNET_GIB_PER_MP = 0.5  # activations of one CFG step (cond + uncond) per megapixel of one picture, 16-bit or 32
SLACK = 0.25 * GIB  # Python, buffers, the text encoder's activations


def available() -> int:
    """Bytes this process may still take: MemAvailable, or the cgroup v2 limit's remainder where lower;
    $SD1KIT_MEMORY_AVAILABLE (GiB) stands in for both (a smaller budget than the machine's)."""
    forced = os.environ.get("SD1KIT_MEMORY_AVAILABLE")
    if forced:
        try:
            return int(float(forced) * GIB)
        except ValueError:
            raise Sd1kitError("SD1KIT_MEMORY_AVAILABLE", f"a number of GiB, not {forced!r}") from None
    free = _meminfo("MemAvailable")
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _meminfo(key: str) -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: no refusal


def _precision(model) -> str:
    runtime = getattr(model, "runtime", None)
    return "bf16" if runtime is not None and runtime.dtype in ("bf16", "fp16") else "fp32"


def decode_bytes(size: tuple[int, int], precision: str, banded: bool) -> int:
    return int(DECODE_GIB_PER_MP[precision, banded] * size[0] * size[1] / MP * GIB)


def job_bytes(plan, banded: bool | None = None) -> int:
    """Bytes the job adds to the loaded model at its peak: the largest pass's UNet step, or the decode (they do
    not overlap: the decode follows the sampling), plus slack."""
    from sd1kit.pipeline.images import AUTO_BANDED_PIXELS

    last = plan.passes[-1].size
    if banded is None:
        banded = plan.request.tiled_vae or last[0] * last[1] > AUTO_BANDED_PIXELS
    unet = max(UNET_GIB_PER_MP * p.size[0] * p.size[1] / MP * plan.request.batch_size for p in plan.passes) * GIB
    decode = 0 if any(m.kind == "taesd" for m in plan.modifiers) else decode_bytes(last, _precision(plan.model),
                                                                                   banded)
    unet_scale, vae_scale = _widths(plan.model.modules)
    return int(max(unet * unet_scale, decode * vae_scale) + SLACK)


def _widths(modules) -> tuple[float, float]:
    """The UNet's and VAE's widths against SD1's (320 and 512 channels): activations scale with them (the
    project's tiny models need a fraction of a real checkpoint's)."""
    unet = getattr(modules.unet_config, "model_channels", 320) / 320
    channels = getattr(getattr(modules.vae, "config", None), "block_out_channels", None) or (512,)
    return min(unet, 1.0), min(max(channels) / 512, 1.0)


def check_room(plan) -> None:
    """Refuse, in one line, a job the machine's free memory cannot hold even with the banded decode."""
    need, free = job_bytes(plan, banded=True), available()
    if need > free:
        w, h = plan.passes[-1].size
        raise Sd1kitError("memory", f"a {w}x{h} picture needs about {need / GIB:.1f} GiB more than the loaded model, "
                                    f"and this machine has {free / GIB:.1f} GiB free: a smaller size or batch, "
                                    "fewer other programs, or --low-memory")


def decode_banded(vae_precision: str, size: tuple[int, int]) -> bool:
    """Whether the whole decode of a picture of `size` would not fit the free memory (then it goes in bands)."""
    return decode_bytes(size, vae_precision, False) + SLACK > available()


def release(module, drop: bool = False) -> None:
    """After a part's phase of a job (the text encoder once the prompts are encoded, the UNet before the decode,
    the VAE after it): an OpenVINO part frees the activations it keeps for its next call, and with `drop`
    (--low-memory) its compiled weights too. Torch modules hold nothing between calls."""
    free = getattr(module, "release_memory", None) if module is not None else None
    if free is not None:
        free(drop)
