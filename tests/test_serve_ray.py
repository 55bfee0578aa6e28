"""`sd1kit serve --ray --replicas 2`: the A1111 API with its generation on two Ray Serve replicas (a local Ray of
two CPUs started by the test, stopped after). 20 concurrent webuiapi txt2img calls all answer, each with its own
seed, and each picture regenerates pixel for pixel from its infotext in this process; each job's progress is read by
its id while several run at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

ray = pytest.importorskip("ray")
from sd1kit.server.app import ServerConfig  # noqa: E402
from test_server import Running, models_dir  # noqa: E402,F401  (the A1111 models folder of tiny models)


@pytest.fixture(scope="module")
def server(models_dir):  # noqa: F811
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    running = Running(ServerConfig(models_dir, queue_size=32, model="sd15-tiny", ray="auto", replicas=2))
    yield running
    running.stop()
    running.app.state.sd1kit.replicas.close()
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def test_twenty_concurrent_webuiapi_calls_on_two_replicas(server, models_dir):  # noqa: F811
    import webuiapi

    from sd1kit.metadata.infotext import parse_infotext
    from sd1kit.pipeline.from_picture import request_from_infotext
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.runtime import resolve_runtime

    assert len(server.app.state.sd1kit.replicas.names) == 2  # two replica processes answer
    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    seeds = list(range(500, 520))

    def call(seed):
        return api.txt2img(prompt=f"1girl, picture {seed}", seed=seed, steps=2, width=64, height=64,
                           sampler_name="Euler")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, seeds))
    texts = [r.info["infotexts"][0] for r in results]
    assert [r.info["seed"] for r in results] == seeds
    assert [int(parse_infotext(t)["Seed"]) for t in texts] == seeds
    assert len({r.image.tobytes() for r in results}) == 20
    for r, text in list(zip(results, texts))[:3]:  # each regenerates from its own infotext, here (`--from`)
        request, fields = request_from_infotext(text)
        model = load_model(models_dir / "Stable-diffusion" / "sd15-tiny.safetensors",
                           runtime=resolve_runtime(device="cpu", picture=fields))
        again = generate(request.with_(model=str(model.path)), model).images[0]
        assert again.infotext == text
        assert np.array_equal(np.asarray(again.image), np.asarray(r.image.convert("RGB")))


def test_each_jobs_progress_is_its_own(server):
    with httpx.Client(base_url=server.url, timeout=120) as http:
        ids = [http.post("/sd1kit/v1/jobs", json={"kind": "txt2img", "payload": {
            "prompt": f"job {i}", "seed": i, "steps": 40, "width": 64, "height": 64}}).json()["id"]
            for i in range(3)]
        seen: dict = {i: set() for i in ids}
        deadline = time.time() + 240
        while time.time() < deadline:
            states = {i: http.get(f"/sd1kit/v1/jobs/{i}").json() for i in ids}
            for i, s in states.items():
                seen[i].add(s["step"])
                p = http.get("/sdapi/v1/progress", params={"id_task": i, "skip_current_image": True}).json()
                assert p["state"]["job"] in (i, "")  # this job's, never another running one's
                if s["state"] == "running" and p["state"]["sampling_steps"]:
                    assert p["state"]["sampling_steps"] == 40 and p["state"]["sampling_step"] >= s["step"]
                    seen[i].add(("progress", p["state"]["sampling_step"]))
            if all(s["state"] == "done" for s in states.values()):
                break
            time.sleep(0.1)
        assert all(s["state"] == "done" for s in states.values()), states
        for i in ids:
            assert states[i]["result"]["images"]
            assert {x for x in seen[i] if isinstance(x, int)} - {0, 40}  # its steps seen part way
    assert sum(any(isinstance(x, tuple) for x in v) for v in seen.values()) >= 2  # /progress by id, of several


def test_interrupt_keeps_the_unfinished_picture(server):
    """/sdapi/v1/interrupt reaches the replica running the job: it stops at its next step and the job ends with
    its unfinished picture, as A1111's interrupt does."""
    import json

    with httpx.Client(base_url=server.url, timeout=120) as http:
        job = http.post("/sd1kit/v1/jobs", json={"kind": "txt2img", "payload": {
            "prompt": "long", "seed": 9, "steps": 150, "width": 64, "height": 64}}).json()["id"]
        deadline = time.time() + 120
        while time.time() < deadline and http.get(f"/sd1kit/v1/jobs/{job}").json()["step"] < 3:
            time.sleep(0.05)
        assert http.post("/sdapi/v1/interrupt").status_code == 200
        while time.time() < deadline and http.get(f"/sd1kit/v1/jobs/{job}").json()["state"] != "done":
            time.sleep(0.1)
        state = http.get(f"/sd1kit/v1/jobs/{job}").json()
        assert state["state"] == "done" and 3 <= state["step"] < 150, state["step"]
        assert state["result"]["images"] and json.loads(state["result"]["info"])["interrupted"] is True


def test_a_model_switch_reaches_every_replica(server):
    import webuiapi

    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    api.util_set_model("wd-tiny")
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda s: api.txt2img(prompt="x", seed=s, steps=1, width=64, height=64),
                                    range(6)))
        assert all("Model: wd-tiny" in r.info["infotexts"][0] for r in results)
    finally:
        api.util_set_model("sd15-tiny")
