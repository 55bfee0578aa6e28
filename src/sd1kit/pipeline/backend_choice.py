"""`--backend auto`: OpenVINO or torch, whichever runs this machine's UNet step faster. Which one wins depends on the
CPU (measured: OpenVINO bf16 ahead of torch bf16 on one AVX512-BF16 machine, behind it on another), so it is
measured, once per machine and model architecture, on the first full-size model loaded, and the verdict cached in
$SD1KIT_CACHE_DIR/backend-choice.json: one UNet call at 512x512 (a CFG batch of 2) on each backend, after a
warm-up. Models smaller than SD1's UNet (the project's tiny test models) run on torch: a verdict on them would
say nothing of a real checkpoint's."""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from sd1kit.pipeline.options import Resolved

FULL_SIZE = (320, (1, 2, 4, 4))  # SD1's UNet: model channels, channel multipliers


def is_full_size(unet_config) -> bool:
    return unet_config is not None and (unet_config.model_channels, tuple(unet_config.channel_mult)) == FULL_SIZE


def _choices_file():
    from sd1kit.pipeline.openvino_backend import cache_root

    return cache_root().parent / "backend-choice.json"


def machine_key(dtype: str, unet_config) -> str:
    """What a verdict depends on: the CPU (name and the flags that pick kernels), the threads, the versions, the
    precision and the UNet's architecture."""
    import openvino as ov

    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
        family = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.split(":")[0].strip() in
                  ("cpu family", "model")][:2]
        have = set(text.split())
        flags = ",".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16") if f in have)
        name = f"{name} {'/'.join(family)}"
    except OSError:
        name = platform.processor()
    arch = f"{unet_config.model_channels}x{'-'.join(map(str, unet_config.channel_mult))}"
    return (f"{name}|{flags}|{torch.get_num_threads()} threads|torch {torch.__version__.split('+')[0]}|"
            f"openvino {ov.__version__}|{dtype}|unet {arch}")


def _read() -> dict:
    try:
        return json.loads(_choices_file().read_text())
    except (OSError, ValueError):
        return {}


def _write(key: str, verdict: dict) -> None:
    path = _choices_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**_read(), key: verdict}
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _seconds(unet, inputs, runs: int = 1) -> float:
    with torch.no_grad():
        unet(*inputs[:2], encoder_hidden_states=inputs[2])  # warm-up (and the compile, for OpenVINO)
        t = time.perf_counter()
        for _ in range(runs):
            unet(*inputs[:2], encoder_hidden_states=inputs[2])
    return (time.perf_counter() - t) / runs


def measure(raw_modules, place, dtype: str) -> dict:
    """Time one UNet call on each backend: OpenVINO from the IR converted from `raw_modules` (the file's weights,
    cached as the openvino backend will use it), torch after `place(raw_modules)` puts them in the torch precision
    (in place). Returns the verdict recorded."""
    from sd1kit.pipeline.openvino_backend import openvino_modules

    print("sd1kit: measuring which backend runs this machine's UNet faster (once; cached) ...", file=sys.stderr,
          flush=True)
    unet_cfg = raw_modules.unet.config
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(2, unet_cfg.in_channels, 64, 64, generator=g), torch.tensor([500.0, 500.0]),
              torch.randn(2, 77, unet_cfg.cross_attention_dim, generator=g))
    ov_unet = openvino_modules(raw_modules, parts=("unet",), precision=_ov_precision(dtype)).unet
    ov_s = _seconds(ov_unet, inputs)
    del ov_unet
    placed = place(raw_modules)
    dt = next(placed.unet.parameters()).dtype
    torch_s = _seconds(placed.unet, tuple(t.to(dt) if t.is_floating_point() else t for t in inputs))
    winner = "openvino" if ov_s < torch_s else "torch"
    print(f"sd1kit: UNet step at 512x512: torch {dtype} {torch_s:.2f} s, OpenVINO {ov_s:.2f} s: {winner}",
          file=sys.stderr, flush=True)
    return {"backend": winner, "torch_s": round(torch_s, 3), "openvino_s": round(ov_s, 3),
            "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


def _ov_precision(dtype: str) -> str:
    from sd1kit.pipeline.openvino_backend import precision_of

    return precision_of(dtype)


def choose(raw_modules, place, dtype: str) -> Resolved:
    """The backend `auto` runs this model on (see the module's docstring)."""
    if not is_full_size(raw_modules.unet_config):
        return Resolved("torch", "auto: torch for models smaller than SD1 (OpenVINO is measured on full-size ones)")
    key = machine_key(dtype, raw_modules.unet_config)
    verdict = _read().get(key)
    if verdict is None:
        verdict = measure(raw_modules, place, dtype)
        _write(key, verdict)
    return Resolved(verdict["backend"], f"auto: measured on this machine (UNet step torch {verdict['torch_s']} s, "
                                        f"OpenVINO {verdict['openvino_s']} s)")


def forget() -> None:
    """Drop the cached verdicts (the next full-size load measures again)."""
    try:
        _choices_file().unlink()
    except FileNotFoundError:
        pass
