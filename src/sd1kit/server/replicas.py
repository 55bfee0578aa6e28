"""`sd1kit serve --ray auto|ADDRESS --replicas N`: the same A1111 API, its generation run by N Ray Serve replicas
that each hold a model (sd1kit.batch.worker.Worker: the checkpoint found by its hash, loaded once and kept). The
HTTP server stays one process: it checks each request, keeps the job table (so /sdapi/v1/progress and
/sd1kit/v1/jobs report the job the caller submitted, whichever replica runs it) and runs N jobs at once, each
streamed from the replica Ray Serve routes it to: first its step count, then a preview latent per step, then the
pictures. Every job names its checkpoint, so an option that switches the model switches it for every replica
(each loads it on its next job)."""

from __future__ import annotations

import queue
import threading

from sd1kit.batch.worker import Worker
from sd1kit.errors import Sd1kitError

APP_NAME = "sd1kit"


class StopBoard:
    """The ids of the jobs asked to stop (/sdapi/v1/interrupt, a cancelled job): a replica asks at each step, so an
    interrupted job ends at its next step with its unfinished picture, as A1111 keeps it."""

    def __init__(self):
        self.ids: set = set()

    def stop(self, job_id: str) -> None:
        self.ids.add(job_id)

    def stopped(self, job_id: str) -> bool:
        return job_id in self.ids

    def forget(self, job_id: str) -> None:
        self.ids.discard(job_id)


class Replica:
    """One replica: a Worker, and a generator of one job's events."""

    def __init__(self, runtime: dict, threads: int, models_dir: str | None, board=None):
        self.worker = Worker(runtime, threads, models_dir)
        self.board = board

    def ping(self) -> str:
        return self.worker.name

    def _stopped(self, job_id: str | None) -> bool:
        import ray

        return bool(self.board is not None and job_id and ray.get(self.board.stopped.remote(job_id)))

    def generate(self, request, sha256: str | None, dry: bool, job_id: str | None = None):
        """("steps", n), ("step", preview latent)..., then ("done", Result) or ("plan", its JSON) or ("error",
        one line). Closing the stream (the client's job cancelled) stops the run at its next step."""
        events: queue.Queue = queue.Queue()
        stop = threading.Event()

        def work():
            try:
                the_plan = self.worker.planned(request, sha256)
                if dry:
                    events.put(("plan", the_plan.as_json()))
                    return
                from sd1kit.pipeline.generate import run

                events.put(("steps", sum(p.steps for p in the_plan.passes) * the_plan.request.batch_count))
                result = run(the_plan, callback=lambda i, sigma, latent: events.put(("step", latent[:1].clone())),
                             should_stop=lambda: stop.is_set() or self._stopped(job_id))
                result.plan = result.controls = None  # they hold the model
                events.put(("done", result))
            except Sd1kitError as e:
                events.put(("error", str(e)))
            except Exception as e:  # noqa: BLE001 - the client gets the reason, the replica lives on
                events.put(("error", f"{e.__class__.__name__}: {e}"))

        thread = threading.Thread(target=work, name="sd1kit-replica-job", daemon=True)
        thread.start()
        try:
            while True:
                event = events.get()
                yield event
                if event[0] in ("done", "plan", "error"):
                    return
        finally:
            stop.set()
            thread.join()


class Replicas:
    """The HTTP server's side: the Serve application started (or joined) on the cluster, and each job streamed
    from the replica it is routed to."""

    def __init__(self, address: str | None, replicas: int, runtime: dict, threads: int, models_dir: str | None):
        from ray import serve

        from sd1kit.batch.on_ray import connect

        self.count = max(1, replicas)
        self.started = connect(address, self.count * max(1, threads))
        serve.start(proxy_location="Disabled")  # no HTTP proxy of Serve's own: the sd1kit server is the ingress
        deployment = serve.deployment(Replica, name="Replica", num_replicas=self.count,
                                      ray_actor_options={"num_cpus": max(1, threads)},
                                      max_ongoing_requests=1)
        import ray

        self.board = ray.remote(StopBoard).options(num_cpus=0).remote()
        self.handle = serve.run(deployment.bind(runtime, threads, models_dir, self.board), name=APP_NAME,
                                route_prefix=None)
        self.names = sorted({self.handle.ping.remote().result() for _ in range(self.count * 4)})

    def run(self, job, request, sha256: str | None, dry: bool):
        """The job's events turned into its progress (job.steps / job.step / job.preview) and its outcome."""
        stream = self.handle.options(stream=True).generate.remote(request, sha256, dry, job.id)
        told = False
        try:
            for kind, value in stream:
                if kind == "steps":
                    job.steps = value
                elif kind == "step":
                    job.step += 1
                    job.preview = value
                elif kind == "error":
                    raise Sd1kitError(job.id, value)
                else:
                    return kind, value
                if job.stop and not told:  # the replica stops at its next step, its picture kept
                    self.board.stop.remote(job.id)
                    told = True
        finally:
            if told:
                self.board.forget.remote(job.id)
            del stream
        raise Sd1kitError(job.id, "the replica ended the job without a result")

    def close(self) -> None:
        import ray
        from ray import serve

        try:
            serve.delete(APP_NAME)
        finally:
            if self.started:
                serve.shutdown()
                ray.shutdown()
