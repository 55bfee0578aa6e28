"""`sd1kit batch --ray`: the jobs on a Ray cluster. One actor per worker (`--workers`, each `--threads-per-worker`
CPUs) holds its model; the driver sends each live actor one job at a time and writes what comes back. An actor
whose process or node dies is replaced (Ray places the new one on a live node) and its job sent again, up to
MAX_ATTEMPTS runs; a job's own failure is not retried. `--ray auto`: the cluster this machine belongs to (as
`ray start` left it, or RAY_ADDRESS), else a local one started for the run; an address: that cluster."""

from __future__ import annotations

import collections
import logging
import time

from sd1kit.batch.run import MAX_ATTEMPTS, PLACE_TIMEOUT, Recorder
from sd1kit.batch.worker import Worker
from sd1kit.errors import Sd1kitError


def require_ray():
    try:
        import ray
    except ImportError:
        raise Sd1kitError("--ray", "Ray is not installed: pip install 'sd1kit[cluster]'") from None
    return ray


def connect(address: str | None, cpus: int) -> bool:
    """ray.init for the run; True when this call started or joined it (and so shuts it down after)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "include_dashboard": False, "log_to_driver": False}
    if address in (None, "", "auto"):
        try:
            ray.init(address="auto", **quiet)
        except ConnectionError:
            ray.init(num_cpus=cpus, **quiet)
        return True
    _reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise Sd1kitError("--ray", f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0][:160]}") \
            from None
    return True


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port that answers a TCP connection within `timeout`, else a one-line failure (ray.init would retry
    an address that does not answer for minutes)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise Sd1kitError("--ray", f"{address!r}: expected auto or HOST:PORT (ray start --head prints it)")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise Sd1kitError("--ray", f"nothing answers at {address} ({e.strerror or e.__class__.__name__}): is "
                                   "`ray start --head` running there?") from None


def _system_errors(ray) -> tuple:
    """The failures of a worker process or node (not of the job): the job runs again elsewhere."""
    ex = ray.exceptions
    names = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
             "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


class OnRay:
    def __init__(self, address: str | None, workers: int, threads: int, **worker_args):
        self.address, self.workers, self.threads = address, max(1, workers), max(1, threads)
        self.worker_args = {**worker_args, "threads": self.threads}
        self.events: list = []  # (what, detail): actors placed, lost, jobs sent again (for tests and the log)

    def run(self, todo, recorder: Recorder) -> None:
        ray = require_ray()
        started = connect(self.address, self.workers * self.threads)
        pool = _Pool(ray, self.worker_args, self.threads, self.events)
        try:
            for _ in range(self.workers):
                pool.spawn()
            self._dispatch(ray, pool, collections.deque(todo), recorder)
        finally:
            pool.close()
            if started:
                ray.shutdown()

    def _dispatch(self, ray, pool: "_Pool", queue: collections.deque, recorder: Recorder) -> None:
        attempts: collections.Counter = collections.Counter()
        running: dict = {}  # ref -> (actor, job)
        lonely_since = None
        while (queue or running) and not recorder.stopped():
            pool.settle()
            while pool.idle and queue:
                actor, job = pool.idle.pop(), queue.popleft()
                attempts[job.id] += 1
                running[actor.run.remote(job)] = (actor, job)
            if not running and not pool.idle:
                lonely_since = lonely_since or time.monotonic()
                if time.monotonic() - lonely_since > PLACE_TIMEOUT:
                    for job in queue:
                        recorder.finished(job, {"error": f"no worker could be placed on the cluster in "
                                                         f"{PLACE_TIMEOUT} s"}, attempts[job.id])
                    return
            else:
                lonely_since = None
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2) if running else ([], [])
            for ref in ready:
                actor, job = running.pop(ref)
                result = self._result(ray, pool, ref, actor, job, attempts[job.id])
                if result is None:
                    queue.appendleft(job)
                else:
                    recorder.finished(job, result, attempts[job.id])

    def _result(self, ray, pool: "_Pool", ref, actor, job, attempt: int) -> dict | None:
        """The job's result; None when its worker died and it is to run again (its actor replaced)."""
        try:
            result = ray.get(ref)
        except _system_errors(ray) as e:
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else e.__class__.__name__
            pool.lost(actor, reason)
            if attempt >= MAX_ATTEMPTS:
                return {"error": f"its worker died {attempt} times (last: {reason})"}
            self.events.append(("again", job.label))
            return None
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None) or e
            result = {"error": f"{cause.__class__.__name__}: {str(cause).strip().splitlines()[0][:200]}"}
        pool.idle.append(actor)
        return result


class _Pool:
    """The actors: starting (placed, not yet answering), idle, and replaced when lost."""

    def __init__(self, ray, worker_args: dict, threads: int, events: list):
        self.ray, self.worker_args, self.threads, self.events = ray, worker_args, threads, events
        self.actor_class = ray.remote(Worker)
        self.starting: dict = {}  # ping ref -> actor
        self.idle: list = []
        self.all: list = []
        self.failed_starts = 0

    def spawn(self) -> None:
        actor = self.actor_class.options(num_cpus=self.threads, max_restarts=0).remote(**self.worker_args)
        self.all.append(actor)
        self.starting[actor.ping.remote()] = actor

    def settle(self) -> None:
        """Actors whose first answer came: idle; those that died starting: replaced."""
        if not self.starting:
            return
        ready, _ = self.ray.wait(list(self.starting), num_returns=len(self.starting), timeout=0)
        for ref in ready:
            actor = self.starting.pop(ref)
            try:
                self.events.append(("placed", self.ray.get(ref)))
                self.idle.append(actor)
            except _system_errors(self.ray) as e:
                self.failed_starts += 1
                reason = str(e).strip().splitlines()[-1][:200] if str(e).strip() else e.__class__.__name__
                if self.failed_starts >= MAX_ATTEMPTS * 2:
                    raise Sd1kitError("--ray", f"workers do not start ({reason}); is sd1kit installed on every "
                                               "node, with the same Python?") from None
                self.lost(actor, reason)

    def lost(self, actor, reason: str) -> None:
        self.events.append(("lost", reason))
        try:
            self.ray.kill(actor)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.spawn()

    def close(self) -> None:
        for actor in self.all:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
