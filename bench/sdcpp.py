"""sd1kit against stable-diffusion.cpp (the `stable-diffusion-cpp-python` build from PyPI, CPU) on the same random
full-size SD1.5 checkpoint in LDM layout (fp16 safetensors, as A1111 users keep them): UNet seconds per CFG step at
512x512, per sd.cpp weight type, against sd1kit's default (`--dtype auto`) measured in the same run.

    .venv/bin/python bench/sdcpp.py [--types f16,q8_0] [--steps 3] [--sdcpp-python PATH] [--json out.json]

sd.cpp lives in its own virtual environment (its wheel compiles ggml: about 5 minutes on 2 cores). Without
--sdcpp-python the script makes `bench/.sdcpp-venv` with `pip install stable-diffusion-cpp-python==0.4.7`.
Each engine runs in its own process; seconds per step are the mean gap between step-end callbacks (the load, the
prompt encoding and the VAE decode left out), so both sides are timed the same way.
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

HERE = Path(__file__).resolve().parent
SDCPP_VERSION = "0.4.7"


def peak_rss() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))


def run_sdcpp(checkpoint: str, wtype: str, size: int, steps: int) -> dict:
    """Runs inside sd.cpp's environment: no sd1kit import here."""
    from stable_diffusion_cpp import StableDiffusion

    t = time.perf_counter()
    sd = StableDiffusion(model_path=checkpoint, wtype=wtype, n_threads=os.cpu_count(), verbose=False)
    load = time.perf_counter() - t
    stamps = []
    t = time.perf_counter()
    sd.generate_image("masterpiece, 1girl, smile", negative_prompt="lowres", width=size, height=size, cfg_scale=7.0,
                      sample_method="euler", sample_steps=steps, seed=1,
                      progress_callback=lambda step, total, _: stamps.append((step, total, time.perf_counter())))
    total = time.perf_counter() - t
    marks = [s for s in stamps if s[1] == steps][-steps:]  # sampling progress only (loading reports too)
    step = (marks[-1][2] - marks[0][2]) / (len(marks) - 1)
    return {"engine": f"stable-diffusion.cpp {wtype}", "load_s": load, "step_s": step,
            "picture_s": total, "peak_rss": peak_rss()}


def sdcpp_python(given: str | None) -> str:
    if given:
        return given
    venv = HERE / ".sdcpp-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"building stable-diffusion-cpp-python {SDCPP_VERSION} in {venv} (about 5 minutes) ...",
              file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"stable-diffusion-cpp-python=={SDCPP_VERSION}"],
                       check=True, env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count())})
    return str(python)


def child(command: list[str]) -> dict:
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="f16,q8_0")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--sdcpp-python")
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_sdcpp(args.file, args.child, args.size, args.steps)))
        return 0
    import tempfile

    from sd1kit.dev.manifest import write_random_checkpoint
    from sd1kit.pipeline.device import pick_dtype

    folder = tempfile.TemporaryDirectory()
    checkpoint = Path(folder.name) / "random-sd15-fp16.safetensors"
    write_random_checkpoint(checkpoint, seed=0)
    python = sdcpp_python(args.sdcpp_python)
    rows = []
    print("running sd1kit ...", file=sys.stderr, flush=True)
    ours = child([sys.executable, str(HERE / "perf.py"), "--child", "file-auto", "--sizes", str(args.size),
                  "--steps", str(args.steps), "--file", str(checkpoint)])
    rows.append({"engine": f"sd1kit --dtype auto ({str(pick_dtype('auto', 'cpu')).removeprefix('torch.')})",
                 "load_s": ours["build_s"], "step_s": ours["step_s"], "peak_rss": ours["peak_rss"]})
    for wtype in args.types.split(","):
        print(f"running stable-diffusion.cpp {wtype} ...", file=sys.stderr, flush=True)
        rows.append(child([python, __file__, "--child", wtype, "--size", str(args.size), "--steps", str(args.steps),
                           "--file", str(checkpoint)]))
    print(f"\n{args.size}x{args.size}, random full-size SD1.5 in LDM layout (fp16 safetensors), Euler, CFG 7, "
          f"{os.cpu_count()} CPUs; stable-diffusion-cpp-python {SDCPP_VERSION}\n")
    print(f"{'engine':<36}{'load s':>8}{'s/step':>9}{'sd1kit x':>10}{'peak GiB':>10}")
    for r in rows:
        print(f"{r['engine']:<36}{r['load_s']:8.1f}{r['step_s']:9.2f}{r['step_s'] / rows[0]['step_s']:10.2f}"
              f"{r['peak_rss'] / 2**30:10.2f}")
    print("\nsd1kit x: how many times faster sd1kit's step is than that engine's (higher: sd1kit faster)")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
