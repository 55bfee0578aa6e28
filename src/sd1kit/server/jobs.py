"""One worker thread owns the model and runs jobs from a bounded FIFO queue; HTTP handlers only enqueue and wait
on futures. Every accepted job ends with a result or an error; queued jobs can be cancelled, the running one
interrupted (it keeps its unfinished image, as A1111 does)."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from sd1kit.errors import Sd1kitError


class QueueFull(Exception):
    pass


@dataclass
class Job:
    id: str
    kind: str  # txt2img | img2img | options
    work: Callable  # (job) -> result, run on the worker thread
    future: Future = field(default_factory=Future)
    state: str = "queued"  # queued | running | done | failed | cancelled
    step: int = 0
    steps: int = 0
    started: float | None = None
    preview: object = None  # the latest x0-hat latent (for live previews)
    stop: bool = False
    task: str | None = None  # the client's id for it (A1111's force_task_id), for /internal/progress
    finished: float | None = None
    client: str | None = None  # the submitting client's address: /sdapi/v1/progress reports its own last job

    def as_json(self) -> dict:
        done = self.state in ("done", "failed", "cancelled")
        return {"id": self.id, "kind": self.kind, "state": self.state, "step": self.step, "steps": self.steps,
                "progress": 1.0 if done else (self.step / self.steps if self.steps else 0.0)}


class JobQueue:
    def __init__(self, maxsize: int = 16, workers: int = 1):
        self.maxsize = maxsize
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=maxsize)
        self._ids = itertools.count(1)
        self.jobs: dict[str, Job] = {}  # recent jobs by id (finished ones kept for a while)
        self.current: Job | None = None
        self._lock = threading.Lock()
        self.running: dict = {}  # id -> job, those running now (one per worker: several under --ray --replicas)
        self._closing = False
        self._threads = [threading.Thread(target=self._run, name=f"sd1kit-worker-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for thread in self._threads:
            thread.start()

    def submit(self, kind: str, work: Callable, task: str | None = None, client: str | None = None) -> Job:
        job = Job(f"job-{next(self._ids)}", kind, work, task=task, client=client)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"the queue is full ({self.maxsize} jobs waiting); try again later") from None
        with self._lock:
            self.jobs[job.id] = job
            if len(self.jobs) > 1000:  # forget the oldest finished jobs
                for key in [k for k, j in self.jobs.items() if j.future.done()][:200]:
                    del self.jobs[key]
        return job

    def check_room(self) -> None:
        """QueueFull now if a job would not fit (said before a request's images are decoded)."""
        if self._queue.full():
            raise QueueFull(f"the queue is full ({self.maxsize} jobs waiting); try again later")

    def find(self, task: str) -> Job | None:
        """The latest job with this task id (or job id)."""
        with self._lock:
            return next((j for j in reversed(self.jobs.values()) if task in (j.task, j.id)), None)

    def of_client(self, client: str | None) -> Job | None:
        """The latest job this client submitted (None if it submitted none)."""
        with self._lock:
            return next((j for j in reversed(self.jobs.values()) if client and j.client == client), None)

    def pending(self) -> int:
        return self._queue.qsize()

    def cancel(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise Sd1kitError(job_id, "no such job")
        job.stop = True  # a queued job is dropped by the worker, the running one stops at its next step
        return job

    def interrupt(self) -> None:
        for job in list(self.running.values()):
            job.stop = True

    def _run(self) -> None:
        while not self._closing:
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if job.stop:
                job.state = "cancelled"
                if not job.future.done():
                    job.future.set_exception(Sd1kitError(job.id, "cancelled before it started"))
                continue
            job.state, job.started, self.current = "running", time.time(), job
            self.running[job.id] = job
            try:
                result = job.work(job)
            except BaseException as e:  # noqa: BLE001 - every failure goes back to the client that asked
                job.state = "failed"
                job.future.set_exception(e)
            else:
                job.state = "done"
                job.future.set_result(result)
            finally:
                job.finished = time.time()
                self.running.pop(job.id, None)
                self.current = next(iter(self.running.values()), None)

    def close(self) -> None:
        self._closing = True
