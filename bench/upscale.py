"""Model upscalers at full size (random weights, the real files' shapes): RealESRGAN_x4plus_anime_6B (6 RRDB blocks,
64 features) and an old-arch 23-block ESRGAN (4x-UltraSharp's and ESRGAN_4x's shape), a picture upscaled 2x as
hires fix and Extras do, tiled as A1111 tiles it (ESRGAN_tile 192, overlap 8) against untiled (A1111's tile 0),
measured in the same run, each in its own process: wall time, peak RSS, and how far the two pictures differ.

    .venv/bin/python bench/upscale.py [--size 512] [--threads 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

CHILD = """
import sys, time, json
import numpy as np, torch
from PIL import Image
torch.set_num_threads(int(sys.argv[5]))
def peak_rss():
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
from sd1kit.upscalers import UpscalerFile, upscale_with, load_upscaler
u = UpscalerFile(sys.argv[2], __import__('pathlib').Path(sys.argv[1]), sys.argv[3])
load_upscaler(u)
size = int(sys.argv[4])
rng = np.random.default_rng(0)
x = np.linspace(0, 255, size)
base = np.stack([np.add.outer(x, x) / 2, np.add.outer(x, 255 - x) / 2, np.outer(np.ones(size), x)], -1)
image = Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
t = time.perf_counter()
out = upscale_with(image, u, 2, tile=int(sys.argv[6]))
seconds = time.perf_counter() - t
out.save(sys.argv[7])
print(json.dumps({"seconds": seconds, "rss": peak_rss()}))
"""


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="the picture's side (default 512)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    from sd1kit.dev.upscalers import write_anime6b, write_esrgan

    print(f"# {_cpu()}, {args.threads} threads, {args.size}x{args.size} -> 2x")
    print(f"{'upscaler':26} {'tile':>5} {'seconds':>8} {'peak RSS':>9} {'x untiled s':>11} {'x untiled RSS':>13} "
          f"{'max diff':>8} {'mean diff':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"R-ESRGAN 4x+ Anime6B": (write_anime6b(Path(tmp) / "RealESRGAN_x4plus_anime_6B.pth"), "RealESRGAN"),
                 "ESRGAN 23 blocks": (write_esrgan(Path(tmp) / "4x-Big.pth", num_filters=64, num_blocks=23),
                                      "ESRGAN")}
        for name, (path, folder) in files.items():
            rows = {}
            for tile in (0, 192):
                out = Path(tmp) / f"{folder}-{tile}.png"
                done = subprocess.run([sys.executable, "-c", CHILD, str(path), name, folder, str(args.size),
                                       str(args.threads), str(tile), str(out)], capture_output=True, text=True)
                if done.returncode:
                    print(done.stderr[-2000:], file=sys.stderr)
                    return 1
                rows[tile] = json.loads(done.stdout.strip().splitlines()[-1])
                rows[tile]["pixels"] = np.asarray(Image.open(out)).astype(int)
            base = rows[0]
            for tile, row in rows.items():
                diff = np.abs(row["pixels"] - base["pixels"])
                print(f"{name:26} {tile or 'none':>5} {row['seconds']:8.1f} {row['rss'] / 2**20:7.0f}MB "
                      f"{row['seconds'] / base['seconds']:11.2f} {row['rss'] / base['rss']:13.2f} "
                      f"{diff.max():8d} {diff.mean():9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
