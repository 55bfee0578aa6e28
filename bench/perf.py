"""CPU performance of txt2img and its parts, per picture size and configuration, against plain diffusers modules
in fp32 measured in the same run (the baseline of issue 12). Full-size SD1.5 topology with random weights (the cost
is the real one); each configuration runs in its own process so its peak RSS is its own (VmHWM).

    .venv/bin/python bench/perf.py [--sizes 512,768,1088] [--steps 2] [--configs baseline,bf16,fast] [--json out.json]

Peak RSS is txt2img's (taken before the VAE encode is timed). Columns: model build or load seconds, UNet seconds
per CFG step (batch of 2; averaged over 6 steps, two DeepCache cycles, in fast mode), achieved GFLOP/s, text encoder
seconds, VAE decode and encode seconds, the 20-step picture estimated as text + 20 steps + decode, peak RSS (VmHWM),
peak private memory (RssAnon, sampled every 50 ms: file-backed pages such as an mmapped IR are not private), and
each ratio against the baseline.

Rows `openvino` and `openvino-int8` load the same fp16 file on sd1kit's OpenVINO backend, its IR cached in
$SD1KIT_CACHE_DIR (default /tmp/sd1kit-bench-cache). Conversion is paid once per model: a first process loads the
model only, and its seconds in convert_model / save (and, int8, NNCF's compression) are `conv s` (0 when the cache
already held the IR); the timed process then loads from the cache (`load s`), runs a one-step picture to compile
each part for its shapes (`comp s`: OpenVINO's compile_model calls), and only then the timed picture. `ov-plain`
is OpenVINO run plainly (bench/openvino.py), the peer: `conv s` its convert_model calls (it has no cache), `comp s`
its compile and first calls; its peaks include the torch modules it converts.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

CONFIGS = {
    "baseline": "plain diffusers modules, fp32",
    "fp32": "sd1kit pipeline, fp32",
    "bf16": "sd1kit pipeline, bf16 weights and compute",
    "bf16-cl": "sd1kit pipeline, bf16, UNet in channels-last",
    "file-auto": "sd1kit load_model of a 2.1 GB fp16 .safetensors with --dtype auto, then the pipeline",
    "fast": "file-auto + DeepCache 3 + ToMe 0.5 + TAESD decoder (fast mode)",
    "low-memory": "file-auto + --low-memory (16-bit weights, each layer cast to the compute dtype while it runs), "
                  "tiled VAE above 512",
    "openvino": "sd1kit load_model of the same file with --backend openvino (bf16 where the CPU has bf16 dot "
                "products), then the pipeline; the IR converted once (conv s, in a first process), then read from the cache",
    "openvino-low": "openvino + --low-memory (each compiled part freed after its phase of the picture, compiled "
                    "again from the cache for the next: its compile seconds are in the picture)",
    "openvino-int8": "openvino + --int8 (NNCF int8 weights for the UNet and text encoder; fast mode)",
    "ov-plain": "the peer: OpenVINO run plainly (diffusers' modules through convert_model, default compile; "
                "bench/openvino.py)",
}
FILE_CONFIGS = ("file-auto", "fast", "low-memory", "openvino", "openvino-low", "openvino-int8")


def peak_rss() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))


PRIVATE = {"peak": 0}


def sample_private(every: float = 0.05) -> None:
    """Keep the peak of RssAnon (private memory: file-backed pages, such as an mmapped IR or safetensors file,
    are not counted) in PRIVATE, from a background thread."""
    import threading

    def loop():
        while True:
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    PRIVATE["peak"] = max(PRIVATE["peak"], int(line.split()[1]) * 1024)
            time.sleep(every)

    threading.Thread(target=loop, daemon=True).start()


def ov_bench():
    """bench/openvino.py as a module (its file name would shadow the openvino package on import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_openvino", Path(__file__).with_name("openvino.py"))
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer


def run_plain_openvino(name: str, size: int, steps: int) -> dict:
    """bench/openvino.py's peer row, with this table's columns."""
    r = ov_bench().run_plain_openvino(name, size, steps)
    return {"config": name, "build_s": r["build_s"], "convert_s": r["convert_s"], "compile_s": r["compile_s"],
            "encode_s": r["text_s"], "step_s": r["step_s"], "decode_s": r["decode_s"], "vae_encode_s": float("nan"),
            "picture_20_s": r["text_s"] + 20 * r["step_s"] + r["decode_s"], "peak_rss": r["peak_rss"],
            "precision": r["precision"]}


OV_TIME = {"convert_s": 0.0, "compile_s": 0.0}


def time_openvino() -> None:
    """Accumulate in OV_TIME the seconds sd1kit's OpenVINO backend spends converting (convert_model, save,
    NNCF's compression) and compiling (compile_model for a new shape)."""
    from sd1kit.pipeline import openvino_backend as ovb

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                OV_TIME[key] += time.perf_counter() - t
        return wrapper

    ovb._convert, ovb._compress = timed(ovb._convert, "convert_s"), timed(ovb._compress, "convert_s")
    compiled = ovb.OVPart.compiled

    def compiled_timed(part, shapes):
        before, t = ovb.STATS["compiles"], time.perf_counter()
        c = compiled(part, shapes)
        if ovb.STATS["compiles"] > before:
            OV_TIME["compile_s"] += time.perf_counter() - t
        return c

    ovb.OVPart.compiled = compiled_timed


def openvino_runtime(name: str):
    from sd1kit.pipeline.runtime import resolve_runtime

    return resolve_runtime(device="cpu", backend="openvino", int8=name == "openvino-int8" or None,
                           low_memory=name == "openvino-low" or None)


def prepare_openvino(name: str, path: str) -> dict:
    """The first load of an OpenVINO row: converts (and compresses) what the IR cache does not hold yet."""
    from sd1kit.pipeline import openvino_backend as ovb
    from sd1kit.pipeline.model import load_model

    time_openvino()
    t = time.perf_counter()
    load_model(path, runtime=openvino_runtime(name))
    return {"config": name, "prepare_s": time.perf_counter() - t, "convert_s": OV_TIME["convert_s"],
            "conversions": ovb.STATS["conversions"], "compressions": ovb.STATS["compressions"]}


def unet_flops(size: int) -> int:
    """FLOPs of one UNet call on a batch of 2 (cond + uncond), counted on the meta device (no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sd1kit.models.build import build_unet
    from sd1kit.models.configs import SD1_UNET

    with torch.device("meta"):
        unet = build_unet(SD1_UNET)
        x, t, ctx = torch.randn(2, 4, size // 8, size // 8), torch.tensor([500, 500]), torch.randn(2, 77, 768)
        with FlopCounterMode(display=False) as counter:
            unet(x, t, encoder_hidden_states=ctx)
    return counter.get_total_flops()


def write_checkpoint(path: Path) -> None:
    """A random full-size SD1.5 checkpoint in fp16 (A1111's usual pruned layout), and a random TAESD decoder."""
    from sd1kit.dev.manifest import write_random_checkpoint
    from sd1kit.dev.tiny import write_tiny_taesd

    write_random_checkpoint(path, seed=0)
    write_tiny_taesd(path.with_name("taesd_decoder.pth"), width=64)


def run_file(name: str, size: int, steps: int, path: str) -> dict:
    from sd1kit.pipeline.device import pick_dtype
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.request import GenerationRequest

    openvino = name.startswith("openvino")
    if openvino:
        time_openvino()
    t = time.perf_counter()
    if openvino:
        model = load_model(path, runtime=openvino_runtime(name))
    else:
        model = load_model(path, dtype=pick_dtype("auto", "cpu"), low_memory=name == "low-memory")
    load = time.perf_counter() - t
    fast = name == "fast"
    request = GenerationRequest(prompt="masterpiece, 1girl, smile", negative_prompt="lowres", sampler="Euler",
                                steps=(7 if fast else steps + 1), width=size, height=size, seed=1,
                                deepcache=3 if fast else 0, token_merging=0.5 if fast else 0.0,
                                vae_decoder="TAESD" if fast else "Full",
                                tiled_vae=name == "low-memory" and size > 512,
                                taesd=str(Path(path).with_name("taesd_decoder.pth")))
    if not openvino:
        return {"config": name, "build_s": load, **time_generation(request, model)}
    from sd1kit.pipeline.generate import generate

    generate(request.with_(steps=1), model)  # compiles each part for this picture's shapes: `comp s`
    compile_s = OV_TIME["compile_s"]
    row = time_generation(request, model)
    return {"config": name, "build_s": load, "convert_s": OV_TIME["convert_s"], "compile_s": compile_s,
            "precision": model.modules.unet.part.precision, **row}


def time_generation(request, model) -> dict:
    """Text encoder, per-step and decode seconds of one `generate` call, read off its step callbacks (the first
    comes after the first step), txt2img's peak RSS, then the VAE encode timing."""
    from sd1kit.pipeline.generate import generate

    stamps = []
    t = time.perf_counter()
    generate(request, model, callback=lambda *a: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t
    step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    decode = total - (stamps[-1] - t)
    encode = max(stamps[0] - t - step, 0.0)
    peak = peak_rss()  # txt2img's own peak: the encode timing below (img2img's) runs a full-size VAE encode
    private = PRIVATE["peak"]
    vae_encode = time_vae_encode(model.modules.vae, request.width, model.latent_scale)
    return {"encode_s": encode, "step_s": step, "decode_s": decode, "vae_encode_s": vae_encode,
            "picture_20_s": encode + 20 * step + decode, "peak_rss": peak, "private": private}


def time_vae_encode(vae, size: int, scale: float) -> float:
    """Seconds to encode one size x size picture to latents (img2img, hires fix with a pixel upscaler)."""
    import torch

    from sd1kit.pipeline.images import encode_pixels

    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    compiling, t = OV_TIME["compile_s"], time.perf_counter()
    encode_pixels(vae, pixels, scale)
    return time.perf_counter() - t - (OV_TIME["compile_s"] - compiling)  # less the OpenVINO encoder's compile


def run_config(name: str, size: int, steps: int) -> dict:
    import torch

    from sd1kit.models.build import SD1Modules, build_text_encoder, build_unet, build_vae
    from sd1kit.models.configs import SD1_TEXT_ENCODER, SD1_UNET, SD1_VAE

    dtype = torch.bfloat16 if name.startswith("bf16") else torch.float32
    t0 = time.perf_counter()
    torch.manual_seed(0)
    modules = SD1Modules(build_unet(SD1_UNET), build_vae(SD1_VAE), build_text_encoder(SD1_TEXT_ENCODER),
                         SD1_UNET, SD1_VAE, SD1_TEXT_ENCODER)
    for m in (modules.unet, modules.vae, modules.text_encoder):
        m.to(dtype).eval().requires_grad_(False)
    if name == "bf16-cl":
        modules.unet.to(memory_format=torch.channels_last)
    build = time.perf_counter() - t0
    latent = torch.randn(2, 4, size // 8, size // 8, dtype=dtype)
    if name == "baseline":
        with torch.no_grad():
            from transformers import CLIPTokenizerFast  # noqa: F401 - not needed: random token ids stand in

            ids = torch.randint(0, 49408, (2, 77))
            t = time.perf_counter()
            context = modules.text_encoder(ids)[0]
            encode = time.perf_counter() - t
            modules.unet(latent, torch.tensor([500, 500]), encoder_hidden_states=context)  # warm-up
            t = time.perf_counter()
            for _ in range(steps):
                modules.unet(latent, torch.tensor([500, 500]), encoder_hidden_states=context)
            step = (time.perf_counter() - t) / steps
            t = time.perf_counter()
            modules.vae.decode(latent[:1] / 0.18215)
            decode = time.perf_counter() - t
            peak, private = peak_rss(), PRIVATE["peak"]
            t = time.perf_counter()
            modules.vae.encode(torch.rand(1, 3, size, size) * 2 - 1).latent_dist.mean
            vae_encode = time.perf_counter() - t
        return {"config": name, "build_s": build, "encode_s": encode, "step_s": step, "decode_s": decode,
                "vae_encode_s": vae_encode, "picture_20_s": encode + 20 * step + decode, "peak_rss": peak,
                "private": private}
    from sd1kit.pipeline.model import LoadedModel
    from sd1kit.pipeline.request import GenerationRequest
    from sd1kit.sampling.schedules import DiscreteSchedule, sd1_alphas_cumprod

    model = LoadedModel("random-sd15", None, None, modules, "epsilon", False,
                        DiscreteSchedule(sd1_alphas_cumprod()), torch.device("cpu"), dtype, [])
    request = GenerationRequest(prompt="masterpiece, 1girl, smile", negative_prompt="lowres", sampler="Euler",
                                steps=steps + 1, width=size, height=size, seed=1)
    return {"config": name, "build_s": build, **time_generation(request, model)}


def short_precision(precision) -> str:
    """bf16 / f32 / f16 from our names or OpenVINO's element types (str(ov.Type.bf16) is "<Type: 'bfloat16'>")."""
    return ov_bench()._short(precision)


def print_table(result: dict) -> None:
    import torch

    size, flops, rows = result["size"], result["flops"], result["rows"]
    base = next((r for r in rows if r["config"] == "baseline"), rows[0])
    from sd1kit.pipeline.device import cpu_has_bf16

    peer = ov_bench()
    print(f"\n{size}x{size}, full-size SD1.5 topology, random weights; {peer.cpu_name()}, {os.cpu_count()} CPUs, "
          f"bf16 dot products: {'yes' if cpu_has_bf16() else 'no'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, openvino {peer._ov_version()}; UNet FLOPs per CFG step "
          f"{flops / 1e12:.2f} T\n")
    print(f"{'config':<14}{'prec':>5}{'load s':>7}{'conv s':>7}{'comp s':>7}{'s/step':>8}{'GFLOP/s':>8}{'x step':>7}"
          f"{'text s':>7}{'decode s':>9}{'x dec':>6}{'encode s':>9}{'20-step s':>10}{'x pic':>6}{'peak GiB':>9}"
          f"{'private GiB':>12}")
    for r in rows:
        fmt = lambda v, w, p=1: f"{'-':>{w}}" if v is None or v != v else f"{v:{w}.{p}f}"  # noqa: E731
        print(f"{r['config']:<14}{short_precision(r.get('precision')):>5}{r['build_s']:7.1f}"
              f"{fmt(r.get('convert_s'), 7, 0)}{fmt(r.get('compile_s'), 7, 0)}{r['step_s']:8.2f}"
              f"{flops / r['step_s'] / 1e9:8.0f}{base['step_s'] / r['step_s']:7.2f}{r['encode_s']:7.2f}"
              f"{r['decode_s']:9.2f}{base['decode_s'] / r['decode_s']:6.2f}{fmt(r['vae_encode_s'], 9, 2)}"
              f"{r['picture_20_s']:10.1f}{base['picture_20_s'] / r['picture_20_s']:6.2f}"
              f"{r['peak_rss'] / 2**30:9.2f}{r.get('private', PRIVATE['peak']) / 2**30:12.2f}")


def child_row(command: list) -> dict | None:
    t = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return None
    what = command[3] + (" (first load: conversion)" if "--prepare" in command else "")
    print(f"  {what}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512", help="comma-separated, e.g. 512,768,1088")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--configs", help="default: all; bf16 and bf16-cl only on CPUs with bf16 dot products "
                        "(elsewhere bf16 is emulated, ~50x slower than fp32)")
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.configs:
        from sd1kit.pipeline.device import cpu_has_bf16

        args.configs = ",".join(c for c in CONFIGS if cpu_has_bf16() or not c.startswith("bf16"))
    # one IR cache for the run's OpenVINO rows (the int8 row compresses the plain row's IR), left after it
    os.environ.setdefault("SD1KIT_CACHE_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "sd1kit-bench-cache"))
    if args.child and args.prepare:
        print(json.dumps(prepare_openvino(args.child, args.file)))
        return 0
    if args.child:
        size = int(args.sizes)
        sample_private()
        if args.child == "ov-plain":
            result = run_plain_openvino(args.child, size, args.steps)
            result["private"] = PRIVATE["peak"]
        else:
            result = run_file(args.child, size, args.steps, args.file) if args.child in FILE_CONFIGS \
                else run_config(args.child, size, args.steps)
        print(json.dumps(result))
        return 0
    import tempfile

    folder = tempfile.TemporaryDirectory()
    checkpoint = Path(folder.name) / "random-sd15-fp16.safetensors"
    if any(c in FILE_CONFIGS for c in args.configs.split(",")):
        write_checkpoint(checkpoint)
    results = []
    for size in map(int, args.sizes.split(",")):
        rows = []
        for name in args.configs.split(","):
            print(f"running {name} at {size} ...", file=sys.stderr, flush=True)
            child = [sys.executable, __file__, "--child", name, "--sizes", str(size), "--steps", str(args.steps),
                     "--file", str(checkpoint)]
            prepared = child_row(child + ["--prepare"]) if name.startswith("openvino") else {}
            row = child_row(child)
            if row is None or prepared is None:
                return 1
            if prepared:  # conversion: the first process's; the timed one read the IR from the cache
                row["convert_s"], row["prepare"] = prepared["convert_s"], prepared
            rows.append(row)
        results.append({"size": size, "flops": unet_flops(size), "rows": rows})
        print_table(results[-1])
        sys.stdout.flush()
    print("\nx: speed-up against the baseline (higher is faster); "
          + "; ".join(f"{k}: {v}" for k, v in CONFIGS.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
