"""Baking an ~800 MB adapter into a ~2 GB fp16 SD1 checkpoint (full SD1 shapes, random weights): wall time and
peak RSS of `sd1kit lora bake` (streamed) against the in-memory way (load both files whole, add, save; what
A1111's merger and most scripts do), measured in the same run, each in its own process.

    .venv/bin/python bench/bake.py [--rank 400] [--keep DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

CHILD_BAKE = """
import sys, time
def peak_rss():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
from sd1kit.adapters.bake import bake
t = time.perf_counter()
bake(sys.argv[1], [(sys.argv[2], 0.8)], sys.argv[3])
print(time.perf_counter() - t, peak_rss())
"""

CHILD_IN_MEMORY = """
import sys, time
def peak_rss():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
import torch
from safetensors.torch import load_file, save_file
from sd1kit.adapters.file import open_adapter
from sd1kit.adapters.stack import ActiveAdapter, AdapterStack
t = time.perf_counter()
base = load_file(sys.argv[1])
adapter = open_adapter(sys.argv[2])
adapter_tensors = {k: adapter.source.get_tensor(k) for k in adapter.source.tensors}  # held whole, as scripts do
stack = AdapterStack([ActiveAdapter(adapter, "a", 0.8, 0.8)], {k: tuple(v.shape) for k, v in base.items()})
for module in list(stack.targets):
    w = base[module + ".weight"]
    d_w, _ = stack.delta(module, w, None)
    if d_w is not None:
        base[module + ".weight"] = (w.float() + d_w).to(w.dtype)
save_file(base, sys.argv[3])
print(time.perf_counter() - t, peak_rss())
"""


def write_base(path: Path) -> int:
    from sd1kit.dev.manifest import write_random_checkpoint

    return write_random_checkpoint(path, seed=0)


def write_adapter(path: Path, base: Path, rank: int) -> int:
    """A LoCon over every UNet and text-encoder layer a LyCORIS preset targets, in fp16 (HLL-sized)."""
    import torch

    from sd1kit.adapters.names import _te_spellings, _unet_spellings
    from sd1kit.formats.keys.diffusers import unet_keymap
    from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX
    from sd1kit.formats.safetensors_io import write_safetensors_stream
    from sd1kit.formats.source import open_source
    from sd1kit.models.configs import infer_unet_config

    shapes = open_source(base).shapes
    keymap = unet_keymap(infer_unet_config(shapes).layout)
    entries, g = [], torch.Generator().manual_seed(1)
    for key, shape in sorted(shapes.items()):
        if not key.endswith(".weight") or len(shape) not in (2, 4) or "embed" in key:
            continue
        module = key[: -len(".weight")]
        if module.startswith(UNET_PREFIX):
            name = _unet_spellings(module[len(UNET_PREFIX):], keymap.to_diffusers(key[len(UNET_PREFIX):])[:-7])[0]
        elif module.startswith(TE_PREFIX):
            name = _te_spellings(module[len(TE_PREFIX):])[0]
        else:
            continue
        r = min(rank, shape[0], shape[1])
        k = tuple(shape[2:])
        entries += [(f"{name}.lora_down.weight", "F16", (r, shape[1], *k)),
                    (f"{name}.lora_up.weight", "F16", (shape[0], r, *([1, 1] if k else []))),
                    (f"{name}.alpha", "F16", ())]

    def produce(name):
        shape = next(s for n, _, s in entries if n == name)
        if name.endswith("alpha"):
            return torch.tensor(float(rank) / 2, dtype=torch.float16)
        return (torch.randn(shape, generator=g) * 0.01).half()

    write_safetensors_stream(path, entries, produce, {"ss_network_module": "lycoris.kohya"})
    return path.stat().st_size


def run_child(code: str, *args) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True)
    seconds, rss = out.stdout.split()[-2:]
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, default=400, help="LoCon rank (400 gives ~0.8 GB in fp16)")
    parser.add_argument("--keep", help="folder for the files (default: a temporary one, removed after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        folder = Path(tmp)
        base, adapter = folder / "base-fp16.safetensors", folder / "hll-like.safetensors"
        t = time.perf_counter()
        base_size = write_base(base)
        adapter_size = write_adapter(adapter, base, args.rank)
        print(f"wrote base {base_size / 1e9:.2f} GB and adapter {adapter_size / 1e9:.2f} GB "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
        naive_s, naive_rss = run_child(CHILD_IN_MEMORY, base, adapter, folder / "naive.safetensors")
        (folder / "naive.safetensors").unlink()
        bake_s, bake_rss = run_child(CHILD_BAKE, base, adapter, folder / "baked.safetensors")
        rows = [("in memory (load all, add, save)", naive_s, naive_rss), ("sd1kit lora bake (streamed)", bake_s, bake_rss)]
        print(f"\n{'configuration':<34}{'wall s':>9}{'peak RSS GB':>13}{'time ratio':>12}{'RSS ratio':>11}")
        for name, s, rss in rows:
            print(f"{name:<34}{s:>9.1f}{rss / 1e9:>13.2f}{s / naive_s:>12.2f}{rss / naive_rss:>11.2f}")
        print(f"\ntarget: peak RSS under 1.5 GB -> {'met' if bake_rss < 1.5e9 else 'NOT met'}")
        print(json.dumps({"base_bytes": base_size, "adapter_bytes": adapter_size, "naive_s": naive_s,
                          "naive_rss": naive_rss, "bake_s": bake_s, "bake_rss": bake_rss}))


if __name__ == "__main__":
    main()
