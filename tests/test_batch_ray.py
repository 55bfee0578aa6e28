"""`sd1kit batch --ray` on a local multi-node Ray cluster (ray.cluster_utils.Cluster: nodes of one CPU each on this
machine, started by the test and stopped after): 12 jobs over 2 workers give the pictures `sd1kit batch` gives in
this process (pixel-identical; those equal `sd1kit generate`'s: test_batch), a worker node removed mid-batch still
leaves every job done once (manifest and folder agree), a rerun of a finished batch does nothing, bad jobs are
listed with one-line reasons while the others finish."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A head of one CPU (no workers placed on it: the driver's) and three worker nodes of one CPU each."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1) for _ in range(3)]
    c.wait_for_nodes()
    yield c, nodes
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _jobs(path: Path, n: int = 12, prompts: dict | None = None, extra: dict | None = None) -> Path:
    prompts, extra = prompts or {}, extra or {}
    lines = [f"--prompt {prompts.get(i, f'picture {i}, 1girl')} --seed {100 + i} --steps {1 + i % 2}"
             + extra.get(i, "") for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _batch(jobs, out, model, executor):
    from sd1kit.batch.jobs import Base, finished, from_prompts_file
    from sd1kit.batch.run import run_batch
    from sd1kit.pipeline.request import GenerationRequest

    base = Base(GenerationRequest(model=str(model), width=64, height=64), model_given=True)
    todo, _ = finished(from_prompts_file(jobs, base))
    return todo, run_batch(todo, out, executor, quiet=True)


def test_ray_batch_equals_in_process_and_survives_a_lost_node(cluster, tiny_models, tmp_path):
    from sd1kit.batch.on_ray import OnRay
    from sd1kit.batch.run import InProcess, Recorder

    c, nodes = cluster
    model, jobs = tiny_models["sd15"], _jobs(tmp_path / "jobs.txt")
    local = tmp_path / "local"
    _, done = _batch(jobs, local, model, InProcess())
    assert done.done == 12

    executor = OnRay(c.address, workers=2, threads=1)
    finished = Recorder.finished
    state = {"removed": False}

    def finish_then_lose_a_node(self, job, result, attempts=1):  # the test's hand: a node dies after 3 jobs
        finished(self, job, result, attempts)
        if self.outcome.done == 3 and not state["removed"]:
            state["removed"] = True
            victim = next(n for n in nodes if n.node_id == result["node"])  # the node of the job just done
            c.remove_node(victim)
            state["victim"] = victim

    Recorder.finished = finish_then_lose_a_node
    try:
        out = tmp_path / "ray"
        todo, outcome = _batch(jobs, out, model, executor)
    finally:
        Recorder.finished = finished
    assert state["removed"] and outcome.done == 12 and not outcome.failed
    events = {what for what, _ in executor.events}
    assert {"lost", "again"} <= events  # the dead node's actor lost, the job it held sent again
    assert all(e["node"] != state["victim"].node_id for e in _manifest(out)[3:])
    entries = _manifest(out)
    assert sorted(e["job"] for e in entries) == sorted(j.id for j in todo)  # each job once
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == sorted(e["outputs"][0]["file"] for e in entries)  # folder and manifest agree
    assert len({e["worker"] for e in entries}) >= 2
    for e, f in zip(sorted(_manifest(local), key=lambda e: e["job"]), sorted(entries, key=lambda e: e["job"])):
        assert e["outputs"][0]["sha256"] == f["outputs"][0]["sha256"]
        assert np.array_equal(_pixels(local / e["outputs"][0]["file"]), _pixels(out / f["outputs"][0]["file"]))
    _, again = _batch(jobs, out, model, OnRay(c.address, workers=2, threads=1))
    assert (again.done, again.skipped) == (0, 12) and len(_manifest(out)) == 12


def test_ray_batch_lists_bad_jobs_and_finishes_the_others(cluster, tiny_models, tmp_path):
    from sd1kit.batch.on_ray import OnRay

    c, _ = cluster
    jobs = _jobs(tmp_path / "jobs.txt", prompts={7: "picture 7, <lora:missing_lora:1>"},
                 extra={3: " --sampler_name 'Nosuch Sampler'"})
    out = tmp_path / "out"
    _, outcome = _batch(jobs, out, tiny_models["sd15"], OnRay(c.address, workers=2, threads=1))
    assert outcome.done == 10 and len(outcome.failed) == 2
    reasons = dict(outcome.failed)
    assert "Nosuch Sampler" in reasons["jobs.txt line 4"] and "missing_lora" in reasons["jobs.txt line 8"]
    assert all("\n" not in r for r in reasons.values())
    assert len(list(out.glob("*.png"))) == 10


def test_the_command_line_runs_on_the_cluster(cluster, tiny_models, tmp_path, cli):
    c, _ = cluster
    jobs = _jobs(tmp_path / "jobs.txt", n=4)
    out = tmp_path / "out"
    r = cli("batch", jobs, "--out", out, "--ray", c.address, "--workers", "2", "--model", tiny_models["sd15"],
            "--size", "64x64", "--quiet")
    assert r.code == 0, r.err
    assert "4 done, 0 already done, 0 failed" in r.out and len(list(out.glob("*.png"))) == 4
    assert all(e["node"] for e in _manifest(out))  # run by Ray actors
    bad = cli("batch", jobs, "--out", out, "--ray", "127.0.0.1:1", "--quiet")
    assert bad.code == 2 and bad.err.count("\n") == 1 and "--ray" in bad.err
