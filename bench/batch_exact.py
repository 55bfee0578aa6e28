"""What bit-exact batches cost: UNet seconds per CFG step for a batch of images, the CFG denoiser's default
(per_image: one UNet call per image, its cond and uncond rows, as it runs alone) against one call over the whole
batch (per_image=False: [cond rows..., uncond rows...]). Full-size SD1.5 UNet topology with random weights (the
cost is the real one), fp32, on this CPU. Also prints how far the two outputs lie apart (the rounding the
per-image calls remove).

    .venv/bin/python bench/batch_exact.py [--size 512] [--batch 4] [--repeats 2]    # about 5 min on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402


def _perf():
    """bench/perf.py's helpers (FLOP count on the meta device, peak RSS), loaded by path."""
    spec = importlib.util.spec_from_file_location("bench_perf", Path(__file__).with_name("perf.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_model() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "unknown CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="picture side in pixels (256: a quarter of the time)")
    parser.add_argument("--batch", type=int, default=4, help="images in the batch")
    parser.add_argument("--repeats", type=int, default=2, help="timed CFG steps per way, after one warm-up each")
    args = parser.parse_args()

    import torch

    from sd1kit.models.build import build_unet
    from sd1kit.models.configs import SD1_UNET
    from sd1kit.sampling.denoisers import CFGDenoiser, Denoiser, unet_model
    from sd1kit.sampling.schedules import DiscreteSchedule, sd1_alphas_cumprod

    perf = _perf()
    torch.manual_seed(0)
    t = time.perf_counter()
    unet = build_unet(SD1_UNET).eval().requires_grad_(False)
    build = time.perf_counter() - t
    n, side = args.batch, args.size // 8
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    x = torch.randn(n, 4, side, side, generator=g) * 3.0
    sigma = torch.full((n,), 3.0)
    den = Denoiser(unet_model(unet), DiscreteSchedule(sd1_alphas_cumprod()))
    ways = {"one call": False, "per image": True}
    cfgs = {name: CFGDenoiser(den, lambda s: [[(cond, 1.0)]] * n, lambda s: uncond.expand(n, -1, -1),
                              per_image=flag) for name, flag in ways.items()}
    times = {name: [] for name in ways}
    outs = {}
    with torch.no_grad():
        for name, cfg in cfgs.items():  # warm-up (allocator, oneDNN primitives for each batch shape)
            outs[name] = cfg(x, sigma)
        for _ in range(args.repeats):  # interleaved, so load from other processes falls on both alike
            for name, cfg in cfgs.items():
                t = time.perf_counter()
                cfg(x, sigma)
                times[name].append(time.perf_counter() - t)
    calls = {name: cfg.calls[: len(cfg.calls) // (args.repeats + 1)] for name, cfg in cfgs.items()}
    flops = perf.unet_flops(args.size) * n  # unet_flops: one image's cond + uncond
    best = {name: min(ts) for name, ts in times.items()}
    diff = (outs["one call"] - outs["per image"]).abs().max().item()
    print(f"\nUNet per CFG step, batch of {n} at {args.size}x{args.size}: full-size SD1.5 UNet (random weights), "
          f"fp32\nCPU {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; build {build:.1f} s; {flops / 1e12:.2f} TFLOP per step; "
          f"peak RSS {perf.peak_rss() / 2**30:.2f} GiB; {os.getloadavg()[0]:.1f} load average at the end\n")
    print(f"{'way':<11}{'UNet calls (rows)':<20}{'best s':>8}{'mean s':>8}{'GFLOP/s':>9}{'x one call':>11}")
    for name in ways:
        ts = times[name]
        print(f"{name:<11}{str(calls[name]):<20}{best[name]:8.2f}{sum(ts) / len(ts):8.2f}"
              f"{flops / best[name] / 1e9:9.0f}{best[name] / best['one call']:11.3f}")
    print(f"\nper image / one call: {best['per image'] / best['one call']:.3f}x the time (best of {args.repeats}); "
          f"largest difference between their x0-hats {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
