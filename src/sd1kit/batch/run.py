"""The drivers of a batch. The driver alone writes: each finished job's pictures (atomically, under the job's own
names), then its manifest line. Jobs run in this process (`InProcess`) or on Ray (`OnRay`: one actor per worker,
holding its model; one job at a time per actor; a job whose worker process or node died runs again on another, up
to MAX_ATTEMPTS times). A job is done once: the manifest skips it on a rerun, and a job is recorded only from the
result that finished it."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path

from sd1kit.batch.jobs import Job, canonical
from sd1kit.batch.manifest import Manifest
from sd1kit.batch.worker import Interrupted, Worker
from sd1kit.errors import Sd1kitError

MAX_ATTEMPTS = 3  # runs of one job whose worker died before it is listed as failed
PLACE_TIMEOUT = 300  # seconds without any live worker before the rest of the jobs are listed as failed


@dataclasses.dataclass
class Outcome:
    total: int
    done: int = 0
    skipped: int = 0  # done by an earlier run (the manifest)
    failed: list = dataclasses.field(default_factory=list)  # (label, reason)
    pictures: int = 0
    stopped: bool = False


class Recorder:
    """The driver's writer: pictures, then the manifest line; and the stop flag (SIGINT)."""

    def __init__(self, out: Path, manifest: Manifest, outcome: Outcome, bar=None):
        self.out, self.manifest, self.outcome, self.bar = out, manifest, outcome, bar
        self.stop = False
        self.started = time.perf_counter()

    def stopped(self) -> bool:
        return self.stop

    def finished(self, job: Job, result: dict, attempts: int = 1) -> None:
        from sd1kit.formats.atomic import atomic_path

        entry = {"job": job.id, "label": job.label, "worker": result.get("worker"), "node": result.get("node"),
                 "seconds": round(result.get("seconds", 0.0), 3), "attempts": attempts,
                 "request": json.loads(canonical(job.request)) if job.request is not None else None,
                 "seed": job.request.seed if job.request is not None else None}
        if "error" in result:
            self.manifest.append({**entry, "status": "failed", "reason": result["error"]})
            self.outcome.failed.append((job.label, result["error"]))
        else:
            names, outputs = job.output_names(), []
            for k, picture in enumerate(result["outputs"]):
                name = names[k] if k < len(names) else f"{job.id[:12]}-{picture['seed']}-{k}.png"
                with atomic_path(self.out / name) as tmp:
                    tmp.write_bytes(picture["png"])
                outputs.append({"file": name, "seed": picture["seed"], "sha256": picture["sha256"]})
            self.manifest.append({**entry, "status": "done", "outputs": outputs,
                                  "warnings": result.get("warnings", [])})
            self.outcome.done += 1
            self.outcome.pictures += len(outputs)
        if self.bar is not None:
            minutes = (time.perf_counter() - self.started) / 60
            self.bar.set_postfix_str(f"{self.outcome.pictures / max(minutes, 1e-9):.1f} pictures/min, "
                                     f"{len(self.outcome.failed)} failed")
            self.bar.update(1)


def run_batch(jobs: list[Job], out: Path, executor, quiet: bool = False) -> Outcome:
    """Every job not done yet run by `executor` (InProcess / OnRay), recorded in `out`; SIGINT stops it cleanly."""
    from tqdm import tqdm

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Sd1kitError(str(out), f"cannot be made ({e.strerror or e.__class__.__name__})") from None
    manifest = Manifest(out)
    outcome = Outcome(total=len(jobs))
    todo = []
    recorder = Recorder(out, manifest, outcome)
    for job in jobs:
        if manifest.done(job.id):
            outcome.skipped += 1
        elif job.request is None:
            recorder.finished(job, {"error": job.error})
        else:
            todo.append(job)
    main = threading.current_thread() is threading.main_thread()  # signal handlers: the main thread's only
    previous = signal.getsignal(signal.SIGINT) if main else None
    if main:
        signal.signal(signal.SIGINT, lambda *_: setattr(recorder, "stop", True))
    try:
        with tqdm(total=len(todo), unit="job", file=sys.stderr, disable=quiet or not todo) as bar:
            recorder.bar = bar
            executor.run(todo, recorder)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    outcome.stopped = recorder.stop
    return outcome


class InProcess:
    """Jobs one after another in this process, through the same Worker the Ray actors are."""

    def __init__(self, **worker_args):
        self.worker = Worker(**worker_args)

    def run(self, todo: list[Job], recorder: Recorder) -> None:
        for job in todo:
            if recorder.stopped():
                return
            try:
                result = self.worker.run(job, should_stop=recorder.stopped)
            except Interrupted:
                return
            recorder.finished(job, result)
