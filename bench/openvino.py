"""The OpenVINO backend against torch and against OpenVINO run plainly, on the CPU, in one run: full-size SD1.5
topology with random weights (built as bench/perf.py builds them), each configuration in its own process so its
peak RSS is its own.

    .venv/bin/python bench/openvino.py [--size 512] [--steps 2] [--configs baseline,bf16-cl,openvino,ov-plain]

Rows: `baseline`, diffusers' UNet / VAE called plainly in fp32; `bf16-cl`, sd1kit's current best torch path (bf16
weights, UNet in channels-last); `openvino`, sd1kit's converted modules (pipeline.openvino_backend, bf16 where the
CPU has bf16 dot products), under both shape policies (`openvino` static shapes per input shape, `ov-dynamic` one
dynamic-shape compile); `ov-plain`, the peer: diffusers' UNet2DConditionModel and VAE decode converted with
`openvino.convert_model(module, example_input=...)` and compiled with OpenVINO's defaults, nothing of ours.
Columns: UNet seconds per CFG step (batch of 2, after one warm-up call), text encoder seconds, VAE decode seconds,
the 20-step picture estimated as text + 20 steps + decode, each ratio to the baseline, and peak RSS. For the
OpenVINO rows: conversion seconds (paid once per model: the IR is cached), compile seconds, and the peak RSS of the
run after the torch modules are freed (`run GiB`, VmHWM reset through /proc/self/clear_refs); `peak GiB` includes
the conversion or the torch modules it reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

CONFIGS = {
    "baseline": "diffusers' UNet and VAE called plainly, fp32",
    "bf16-cl": "torch bf16 weights and compute, UNet in channels-last (sd1kit's best torch path)",
    "openvino": "sd1kit's modules converted by pipeline.openvino_backend, static shapes",
    "ov-dynamic": "the same IR compiled once with dynamic shapes",
    "ov-plain": "OpenVINO run plainly: diffusers' UNet and VAE decode through convert_model, default compile",
}


def peak_rss() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def build_modules():
    import torch

    from sd1kit.models.build import SD1Modules, build_text_encoder, build_unet, build_vae
    from sd1kit.models.configs import SD1_TEXT_ENCODER, SD1_UNET, SD1_VAE

    torch.manual_seed(0)
    modules = SD1Modules(build_unet(SD1_UNET), build_vae(SD1_VAE), build_text_encoder(SD1_TEXT_ENCODER),
                         SD1_UNET, SD1_VAE, SD1_TEXT_ENCODER)
    for m in (modules.unet, modules.vae, modules.text_encoder):
        m.eval().requires_grad_(False)
    return modules


def inputs(size: int, dtype):
    import torch

    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 4, size // 8, size // 8, generator=g).to(dtype)
    context = torch.randn(2, 77, 768, generator=g).to(dtype)
    ids = torch.randint(0, 49408, (1, 77), generator=g)
    return latent, torch.tensor([500.0, 500.0]), context, ids


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and, for OpenVINO, the first inference's lazy initialisation)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def run_torch(name: str, size: int, steps: int) -> dict:
    import torch

    dtype = torch.bfloat16 if name == "bf16-cl" else torch.float32
    t = time.perf_counter()
    modules = build_modules()
    for m in (modules.unet, modules.vae, modules.text_encoder):
        m.to(dtype)
    if name == "bf16-cl":
        modules.unet.to(memory_format=torch.channels_last)
    build = time.perf_counter() - t
    latent, ts, context, ids = inputs(size, dtype)
    with torch.no_grad():
        text = timed(lambda: modules.text_encoder(ids)[0], 2)
        step = timed(lambda: modules.unet(latent, ts, encoder_hidden_states=context), steps)
        decode = timed(lambda: modules.vae.decode(latent[:1] / 0.18215), 1)
    return {"config": name, "build_s": build, "convert_s": None, "compile_s": None, "text_s": text, "step_s": step,
            "decode_s": decode, "peak_rss": peak_rss(), "run_rss": None}


def run_sd1kit_openvino(name: str, size: int, steps: int) -> dict:
    """Convert (or read from the cache), free the torch modules, then time our wrappers as the pipeline calls
    them (unet_model's call, images' decode call, the text encoder's)."""
    import torch

    from sd1kit.pipeline import openvino_backend as ovb

    policy = "dynamic" if name == "ov-dynamic" else "static"
    t = time.perf_counter()
    modules = build_modules()
    build = time.perf_counter() - t
    t = time.perf_counter()
    ov_modules = ovb.openvino_modules(modules, parts=("unet", "vae_decoder", "text_encoder"), policy=policy)
    convert = time.perf_counter() - t
    del modules
    gc.collect()
    peak = peak_rss()
    reset = reset_peak()
    latent, ts, context, ids = inputs(size, torch.float32)
    unet, vae, te = ov_modules.unet, ov_modules.vae, ov_modules.text_encoder
    t = time.perf_counter()
    unet(latent, ts, encoder_hidden_states=context)
    vae.decode(latent[:1])
    te(input_ids=ids)
    compile_s = time.perf_counter() - t
    text = timed(lambda: te(input_ids=ids), 2)
    step = timed(lambda: unet(latent, ts, encoder_hidden_states=context), steps)
    decode = timed(lambda: vae.decode(latent[:1] / 0.18215), 1)
    precision = unet.part.precision
    return {"config": name, "build_s": build, "convert_s": convert if ovb.STATS["conversions"] else 0.0,
            "conversions": ovb.STATS["conversions"], "compile_s": compile_s, "text_s": text, "step_s": step,
            "decode_s": decode, "peak_rss": max(peak, peak_rss()), "run_rss": peak_rss() if reset else None,
            "precision": precision}


def run_plain_openvino(name: str, size: int, steps: int) -> dict:
    """What a user of OpenVINO alone does: convert_model on diffusers' modules with an example input, compile
    with the defaults (OpenVINO picks its own inference precision), call."""
    import openvino as ov
    import torch

    t = time.perf_counter()
    modules = build_modules()
    build = time.perf_counter() - t
    latent, ts, context, ids = inputs(size, torch.float32)

    class Decode(torch.nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, z):
            return self.vae.decode(z).sample

    core = ov.Core()
    t = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unet_ir = ov.convert_model(modules.unet, example_input=(latent, ts, context))
        vae_ir = ov.convert_model(Decode(modules.vae), example_input=(latent[:1],))
        try:
            te_ir = ov.convert_model(modules.text_encoder, example_input=(ids,))
        except Exception as e:  # noqa: BLE001 - the peer's text encoder: timed in torch where it does not convert
            print(f"text encoder did not convert plainly ({e.__class__.__name__}); timed in torch fp32",
                  file=sys.stderr)
            te_ir = None
    convert = time.perf_counter() - t
    t = time.perf_counter()
    unet = core.compile_model(unet_ir, "CPU")
    vae = core.compile_model(vae_ir, "CPU")
    if te_ir is not None:
        te = core.compile_model(te_ir, "CPU")
    else:
        torch_te = modules.text_encoder

        def te(args):
            with torch.no_grad():
                return torch_te(torch.from_numpy(args[0]))[0]
    del unet_ir, vae_ir, te_ir, modules
    gc.collect()
    peak = peak_rss()
    reset = reset_peak()
    x, tt, c, z, i = latent.numpy(), ts.numpy(), context.numpy(), (latent[:1] / 0.18215).numpy(), ids.numpy()
    unet([x, tt, c]), vae([z]), te([i])
    compile_s = time.perf_counter() - t
    text = timed(lambda: te([i]), 2)
    step = timed(lambda: unet([x, tt, c]), steps)
    decode = timed(lambda: vae([z]), 1)
    return {"config": name, "build_s": build, "convert_s": convert, "compile_s": compile_s, "text_s": text,
            "step_s": step, "decode_s": decode, "peak_rss": max(peak, peak_rss()),
            "run_rss": peak_rss() if reset else None,
            "precision": str(unet.get_property("INFERENCE_PRECISION_HINT"))}


def run_child(name: str, size: int, steps: int) -> dict:
    warnings.filterwarnings("ignore")
    if name in ("baseline", "bf16-cl"):
        return run_torch(name, size, steps)
    if name in ("openvino", "ov-dynamic"):
        return run_sd1kit_openvino(name, size, steps)
    return run_plain_openvino(name, size, steps)


def print_table(size: int, rows: list) -> None:
    import torch

    from sd1kit.pipeline.device import cpu_has_bf16

    base = next((r for r in rows if r["config"] == "baseline"), rows[0])
    for r in rows:
        r["picture_20_s"] = r["text_s"] + 20 * r["step_s"] + r["decode_s"]
    print(f"\n{size}x{size}, full-size SD1.5 topology, random weights; {cpu_name()}, {os.cpu_count()} CPUs, "
          f"bf16 dot products: {'yes' if cpu_has_bf16() else 'no'}; torch {torch.__version__}, "
          f"openvino {_ov_version()}\n")
    print(f"{'config':<11}{'prec':>5}{'conv s':>7}{'comp s':>7}{'s/step':>8}{'x step':>7}{'text s':>7}"
          f"{'decode s':>9}{'x dec':>6}{'20-step s':>10}{'x pic':>6}{'peak GiB':>9}{'run GiB':>8}")
    for r in rows:
        fmt = lambda v, w, p=1: f"{v:{w}.{p}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
        print(f"{r['config']:<11}{_short(r.get('precision')):>5}{fmt(r['convert_s'], 7, 0)}{fmt(r['compile_s'], 7, 0)}"
              f"{r['step_s']:8.2f}{base['step_s'] / r['step_s']:7.2f}{r['text_s']:7.3f}{r['decode_s']:9.2f}"
              f"{base['decode_s'] / r['decode_s']:6.2f}{r['picture_20_s']:10.1f}"
              f"{base['picture_20_s'] / r['picture_20_s']:6.2f}{r['peak_rss'] / 2**30:9.2f}"
              f"{fmt(r['run_rss'] / 2**30 if r['run_rss'] else None, 8, 2)}")


def _short(precision) -> str:
    """bf16 / f32 / f16 (OpenVINO's str(ov.Type.bf16) is "<Type: 'bfloat16'>": once shown as f16)."""
    if precision is None:
        return "-"
    p = str(precision).lower()
    return "bf16" if "bf16" in p or "bfloat16" in p else "f32" if "32" in p else "f16" if "16" in p else p[:4]


def _ov_version() -> str:
    try:
        import openvino

        return openvino.__version__.split("-")[0]
    except ImportError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2, help="timed UNet calls per configuration, after a warm-up")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.size, args.steps)))
        return 0
    from sd1kit.pipeline.openvino_backend import require_openvino

    require_openvino()
    import tempfile

    cache = tempfile.TemporaryDirectory(prefix="sd1kit-ov-bench-")  # the IR of random weights: not worth keeping
    env = {**os.environ, "SD1KIT_CACHE_DIR": cache.name}
    rows = []
    for name in args.configs.split(","):
        print(f"running {name} at {args.size} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", name, "--size", str(args.size), "--steps",
                              str(args.steps)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    print_table(args.size, rows)
    print("\nx: speed-up against the baseline (higher is faster); "
          + "; ".join(f"{k}: {v}" for k, v in CONFIGS.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
