"""`sd1kit batch` in this process against Ray: 24 demo-model pictures (the built-in 64x64 model, 20 steps), once
in-process with 2 threads and once on a local Ray with 2 workers x 1 thread, in the same run; pictures per minute,
and Ray's overhead: its start (ray.init and the workers' first answer: Python, torch, the model), and per job (the
Ray run's seconds beyond its workers' own seconds, per job). Each run writes to its own fresh folder.

    .venv/bin/python bench/batch.py [--jobs 24] [--steps 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def jobs_file(folder: Path, n: int, steps: int) -> Path:
    path = folder / "jobs.txt"
    path.write_text("".join(f"--prompt 1girl, picture {i}, smile --seed {1000 + i} --steps {steps}\n"
                            for i in range(n)))
    return path


def run(executor, jobs: Path, out: Path) -> dict:
    from sd1kit.batch.jobs import Base, finished, from_prompts_file
    from sd1kit.batch.run import run_batch
    from sd1kit.pipeline.request import GenerationRequest

    todo, _ = finished(from_prompts_file(jobs, Base(GenerationRequest())))
    t = time.perf_counter()
    outcome = run_batch(todo, out, executor, quiet=True)
    seconds = time.perf_counter() - t
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert outcome.done == len(todo) and not outcome.failed, outcome.failed
    return {"seconds": seconds, "pictures": outcome.pictures, "per_minute": 60 * outcome.pictures / seconds,
            "worker_seconds": sum(e["seconds"] for e in entries), "workers": len({e["worker"] for e in entries})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    import ray
    import torch

    from sd1kit.batch.on_ray import OnRay
    from sd1kit.batch.run import InProcess

    folder = Path(tempfile.mkdtemp(prefix="sd1kit-bench-batch-"))
    jobs = jobs_file(folder, args.jobs, args.steps)
    torch.set_num_threads(2)
    local = run(InProcess(threads=2), jobs, folder / "local")
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    executor = OnRay(None, workers=2, threads=1)
    on_ray = run(executor, jobs, folder / "ray")
    ray.shutdown()
    # the Ray run's time beyond its two workers' own job seconds (each worker's share), per job: dispatch,
    # result transfer, writing; the workers' start (import, model load) included, said apart below
    overhead = (on_ray["seconds"] - on_ray["worker_seconds"] / 2) / args.jobs
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"{args.jobs} pictures, built-in demo model 64x64, {args.steps} steps; {cpu}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, ray {ray.__version__}")
    print(f"{'run':<28}{'seconds':>9}{'pictures/min':>14}{'x':>7}{'workers':>9}")
    for name, r in (("in-process, 2 threads", local), ("Ray, 2 workers x 1 thread", on_ray)):
        print(f"{name:<28}{r['seconds']:9.1f}{r['per_minute']:14.1f}{r['per_minute'] / local['per_minute']:7.2f}"
              f"{r['workers']:9d}")
    print(f"Ray overhead: ray.init {init_s:.1f} s; per job {overhead:.2f} s beyond the workers' own seconds "
          f"(workers' start included: their first jobs load Python, torch and the model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
