"""The exact banded VAE decode (`pipeline.vae_bands`) against diffusers' whole decode: peak memory and time of one
decode, each in its own process, on the full-size SD1 VAE with random weights; and the largest pixel difference.

    .venv/bin/python bench/vae_bands.py [--sizes 512,1088] [--dtypes fp32,bf16]

Peak memory is the process's VmHWM (peak RSS) minus its RSS just before the decode (the VAE's weights and the
latent are in both), so the column is what the decode itself adds."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402

CHILD = r"""
import json, sys, time, torch
from diffusers import AutoencoderKL
size, dtype, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.manual_seed(0)
vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                    block_out_channels=(128, 256, 512, 512),
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).eval()
vae.to({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])
z = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(1)).to(vae.dtype)
def rss(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
with torch.no_grad():
    vae.decode(z[:, :, :8, :8])  # warm the kernels
    before = rss("VmRSS:")
    start = time.perf_counter()
    if how == "whole":
        out = vae.decode(z).sample.float()
    else:
        from sd1kit.pipeline import vae_bands
        out = vae_bands.decode(vae, z)
    seconds = time.perf_counter() - start
torch.save(out, sys.argv[4])
print(json.dumps({"seconds": seconds, "added": rss("VmHWM:") - before}))
"""


def cpu() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def main() -> None:
    import tempfile

    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512,1088")
    ap.add_argument("--dtypes", default="fp32,bf16")
    args = ap.parse_args()
    bf16 = "avx512_bf16" in open("/proc/cpuinfo").read()
    print(f"# {cpu()} ({'AVX512-BF16' if bf16 else 'no bf16 dot products'}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; full-size SD1 VAE decoder, random weights, one picture")
    print(f"{'size':>6} {'dtype':>5} {'whole s':>8} {'banded s':>9} {'whole GiB':>10} {'banded GiB':>11} "
          f"{'memory x':>9} {'max diff (grey levels)':>23}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in map(int, args.sizes.split(",")):
            for dtype in args.dtypes.split(","):
                runs = {}
                for how in ("whole", "banded"):
                    path = f"{tmp}/{how}.pt"
                    out = subprocess.run([sys.executable, "-c", CHILD, str(size), dtype, how, path],
                                         capture_output=True, text=True, check=True)
                    runs[how] = json.loads(out.stdout.strip().splitlines()[-1])
                    runs[how]["pixels"] = torch.load(path)
                diff = ((runs["whole"]["pixels"] - runs["banded"]["pixels"]).abs().max().item()) * 127.5
                w, b = runs["whole"], runs["banded"]
                print(f"{size:>6} {dtype:>5} {w['seconds']:>8.1f} {b['seconds']:>9.1f} {w['added'] / 2**30:>10.2f} "
                      f"{b['added'] / 2**30:>11.2f} {w['added'] / max(b['added'], 1):>9.2f} {diff:>23.3f}")


if __name__ == "__main__":
    main()
