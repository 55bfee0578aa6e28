"""What runs a batch job, in this process or as a Ray actor (the same class): the job's checkpoint located by its
hash (the path the driver saw, else this machine's models folder), loaded once and kept while the jobs use it,
the job planned and run as `sd1kit generate` runs it, its pictures returned as PNG bytes with the sha256 of their
pixels. A job's own failure (an unknown sampler, a missing LoRA, a model this worker does not have) comes back as
its one-line reason; only a dead process is the driver's to retry."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

from sd1kit.errors import Sd1kitError


class Worker:
    def __init__(self, runtime: dict | None = None, threads: int | None = None, models_dir: str | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.runtime = dict(runtime or {})  # resolve_runtime's device / dtype / backend / low_memory / int8, as given
        self.models_dir = models_dir
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.node = _ray_node()

    def ping(self) -> str:
        return self.name

    def run(self, job, should_stop=None) -> dict:
        t = time.perf_counter()
        try:
            outputs, warnings = self._run(job, should_stop)
        except Sd1kitError as e:
            return {"error": str(e), "worker": self.name, "node": self.node, "seconds": time.perf_counter() - t}
        return {"outputs": outputs, "warnings": warnings, "worker": self.name, "node": self.node,
                "seconds": time.perf_counter() - t}

    def _run(self, job, should_stop) -> tuple[list[dict], list[str]]:
        from sd1kit.pipeline.save import png_bytes

        result = self.generate(job.request, job.model_sha256, should_stop=should_stop)
        if any(item.interrupted for item in result.images) or (should_stop and should_stop()):
            raise Interrupted()
        outputs = [{"seed": item.seed, "png": png_bytes(item.image, item.infotext),
                    "sha256": hashlib.sha256(item.image.tobytes()).hexdigest()} for item in result.images]
        return outputs, list(result.warnings)

    def planned(self, request, sha256: str | None = None):
        """The request's plan on its model (located, loaded once and kept), as `sd1kit generate` plans it."""
        from sd1kit.pipeline.model import load_model
        from sd1kit.pipeline.plan import plan
        from sd1kit.pipeline.runtime import resolve_runtime
        from sd1kit.sampling.registry import resolve_sampler

        resolve_sampler(request.sampler, request.schedule)  # a bad name fails before a model is loaded
        model_path = self._locate(request.model, sha256)
        request = request.with_(model=str(model_path) if model_path else None)
        runtime = resolve_runtime(**self.runtime, source="batch", request=request)
        model = load_model(request.model, prediction=request.prediction,
                           zero_terminal_snr=request.zero_terminal_snr, runtime=runtime)
        return plan(request, model)

    def generate(self, request, sha256: str | None = None, callback=None, should_stop=None):
        """The request run on its model: the pipeline's Result (its plan left out: it holds the model)."""
        from sd1kit.pipeline.generate import run

        result = run(self.planned(request, sha256), callback=callback, should_stop=should_stop)
        result.plan = None
        return result

    def _locate(self, path: str | None, sha256: str | None) -> Path | None:
        """The checkpoint: the driver's path where it holds the same file, else the file with that hash in this
        worker's models folder (a worker on another machine), else a one-line failure naming both."""
        from sd1kit.formats.hashes import file_hashes
        from sd1kit.pipeline.from_picture import find_checkpoint, models_dir

        if path is None:
            return None  # the built-in demo model
        hashed = sha256 is not None and len(sha256) == 64
        p = Path(path)
        if p.exists() and (not hashed or not p.is_file() or file_hashes(p).sha256 == sha256):
            return p
        if not hashed:
            raise Sd1kitError("Model", f"{path} is not on this worker ({self.name})")
        folder = Path(self.models_dir) / "Stable-diffusion" if self.models_dir else models_dir()
        return find_checkpoint(p.stem, sha256[:10], folder)


def _ray_node() -> str | None:
    """The Ray node this worker runs on (an actor's), else None (in-process)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


class Interrupted(Exception):
    """The job was stopped (SIGINT on the driver): nothing of it is written; a rerun does it again."""
