"""Weighted sum of two full-size SD1.5 fp16 checkpoints (random weights, ~2.1 GB each): wall time of
`sd1kit merge` against the time to read both files once (the floor for any merger), the in-memory way
(load both whole, lerp, save) as a second baseline, and peak RSS of each, every run in its own process.

    .venv/bin/python bench/merge.py [--keep DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

CHILD_READ = """
import sys, time
def peak_rss():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
t = time.perf_counter()
for path in sys.argv[1:3]:
    with open(path, "rb", buffering=0) as f:
        while f.read(64 << 20):
            pass
print(time.perf_counter() - t, peak_rss())
"""

CHILD_MERGE = """
import sys, time
def peak_rss():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
from sd1kit.merge.recipe import short_recipe
from sd1kit.merge.run import merge
t = time.perf_counter()
merge(short_recipe([sys.argv[1], sys.argv[2]], "weighted-sum", {"alpha": 0.3}), sys.argv[3])
print(time.perf_counter() - t, peak_rss())
"""

CHILD_IN_MEMORY = """
import sys, time
def peak_rss():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
import torch
from safetensors.torch import load_file, save_file
t = time.perf_counter()
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
out = {k: torch.lerp(v.float(), b[k].float(), 0.3).to(v.dtype) if v.is_floating_point() else v for k, v in a.items()}
save_file(out, sys.argv[3])
print(time.perf_counter() - t, peak_rss())
"""


def write_checkpoint(path: Path, seed: int) -> int:
    from sd1kit.dev.manifest import write_random_checkpoint

    return write_random_checkpoint(path, seed)


def run_child(code: str, *args, env=None) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True,
                         env=env)
    seconds, rss = out.stdout.split()[-2:]
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="folder for the files (default: a temporary one, removed after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        folder = Path(tmp)
        a, b = folder / "a-fp16.safetensors", folder / "b-fp16.safetensors"
        size = write_checkpoint(a, 0) + write_checkpoint(b, 1)
        env = {**os.environ, "SD1KIT_CACHE_DIR": str(folder / "cache")}
        read_s, read_rss = run_child(CHILD_READ, a, b)
        first_s, first_rss = run_child(CHILD_MERGE, a, b, folder / "m1.safetensors", env=env)  # hashes computed
        (folder / "m1.safetensors").unlink()
        merge_s, merge_rss = run_child(CHILD_MERGE, a, b, folder / "m2.safetensors", env=env)  # hashes cached
        (folder / "m2.safetensors").unlink()
        mem_s, mem_rss = run_child(CHILD_IN_MEMORY, a, b, folder / "m3.safetensors")
        rows = [("read both files once", read_s, read_rss),
                ("sd1kit merge (inputs hashed)", first_s, first_rss),
                ("sd1kit merge (hashes cached)", merge_s, merge_rss),
                ("in memory (load, lerp, save)", mem_s, mem_rss)]
        print(f"inputs: 2 x {size / 2e9:.2f} GB fp16, weighted sum alpha 0.3")
        print(f"\n{'configuration':<32}{'wall s':>9}{'peak RSS GiB':>14}{'x read time':>13}")
        for name, s, rss in rows:
            print(f"{name:<32}{s:>9.1f}{rss / 2**30:>14.2f}{s / read_s:>13.2f}")
        print(f"\ntarget: peak RSS under 1 GiB -> {'met' if merge_rss < 2**30 and first_rss < 2**30 else 'NOT met'}")
        print(json.dumps({"bytes": size, "read_s": read_s, "merge_hashing_s": first_s, "merge_s": merge_s,
                          "merge_rss": merge_rss, "in_memory_s": mem_s, "in_memory_rss": mem_rss}))


if __name__ == "__main__":
    main()
