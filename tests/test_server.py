"""`sd1kit serve`: the A1111 API through the real `webuiapi` client, the job queue under load, security (the web page
in headless Chromium: test_page.py)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from pictures import noise
from sd1kit.server.app import ServerConfig, create_app


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Running:
    def __init__(self, config: ServerConfig):
        import uvicorn

        self.port = _free_port()
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def models_dir(tiny_models, tmp_path_factory):
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.formats.source import open_source

    root = tmp_path_factory.mktemp("server") / "models"
    (root / "Stable-diffusion").mkdir(parents=True)
    (root / "Lora").mkdir()
    shutil.copy(tiny_models["sd15"], root / "Stable-diffusion" / "sd15-tiny.safetensors")
    shutil.copy(tiny_models["wd"], root / "Stable-diffusion" / "wd-tiny.ckpt")
    write_synthetic_adapter(root / "Lora" / "style.safetensors", open_source(tiny_models["sd15"]).shapes)
    from sd1kit.dev.controlnet import write_tiny_controlnet

    (root / "ControlNet").mkdir()
    write_tiny_controlnet(root / "ControlNet" / "control_v11p_sd15_canny.safetensors", "ldm")
    import torch
    from safetensors.torch import save_file

    (root.parent / "embeddings").mkdir()
    save_file({"emb_params": torch.randn(2, 32)}, str(root.parent / "embeddings" / "badhands.safetensors"))
    return root


@pytest.fixture(scope="module")
def server(models_dir):
    running = Running(ServerConfig(models_dir, queue_size=8, model="sd15-tiny"))  # the tiny ControlNet's topology
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(server):
    import webuiapi

    return webuiapi.WebUIApi(host="127.0.0.1", port=server.port)


def _png(seed=0, size=64) -> Image.Image:
    return noise(size, size, seed)


def test_txt2img_img2img_png_info_with_webuiapi(api):
    r = api.txt2img(prompt="1girl <lora:style:0.5>", negative_prompt="lowres", steps=2, width=64, height=64, seed=11,
                    sampler_name="DPM++ 2M", scheduler="Karras", batch_size=2)
    assert [im.size for im in r.images] == [(64, 64), (64, 64)] and r.info["all_seeds"] == [11, 12]
    assert 'Lora hashes: "style: ' in r.info["infotexts"][0] and "Schedule type: Karras" in r.info["infotexts"][0]
    assert r.images[0].info["parameters"] == r.info["infotexts"][0]  # the PNG carries its infotext
    info = api.png_info(r.images[0])
    assert info.info.startswith("1girl <lora:style:0.5>\nNegative prompt: lowres\nSteps: 2")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    r2 = api.img2img(images=[_png(1)], mask_image=mask, prompt="cat", steps=2, width=64, height=64,
                     denoising_strength=0.6, seed=3, inpainting_fill=1)
    assert r2.image.size == (64, 64) and "Masked content: original" in r2.info["infotexts"][0]
    assert np.array_equal(np.asarray(r2.image)[:4, :4], np.asarray(_png(1))[:4, :4])  # unmasked corner kept


def test_controlnet_through_alwayson_scripts(api):
    import webuiapi

    unit = webuiapi.ControlNetUnit(image=_png(2), module="canny", model="control_v11p_sd15_canny [00000000]",
                                   weight=0.7, guidance_end=0.8, threshold_a=100, threshold_b=200, control_mode=2,
                                   resize_mode="Crop and Resize")
    r = api.txt2img(prompt="x", steps=2, width=64, height=64, seed=4, controlnet_units=[unit], alwayson_scripts={})
    text = r.info["infotexts"][0]
    assert 'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [' in text
    assert "Weight: 0.7" in text and "Control Mode: ControlNet is more important" in text
    plain = api.txt2img(prompt="x", steps=2, width=64, height=64, seed=4, alwayson_scripts={})  # (webuiapi's
    # default alwayson_scripts dict is shared between calls: pass fresh ones)
    assert not np.array_equal(np.asarray(r.image), np.asarray(plain.image))


def test_job_api_cancels_queued_jobs(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=60) as c:
        body = {"kind": "txt2img", "payload": {"prompt": "x", "steps": 20, "width": 128, "height": 128}}
        ids = [c.post("/sd1kit/v1/jobs", json=body).json()["id"] for _ in range(3)]
        assert c.delete(f"/sd1kit/v1/jobs/{ids[2]}").status_code == 200
        c.delete(f"/sd1kit/v1/jobs/{ids[0]}")  # the running one stops at its next step
        deadline = time.time() + 60
        states = {}
        while time.time() < deadline:
            states = {i: c.get(f"/sd1kit/v1/jobs/{i}").json() for i in ids}
            if all(s["state"] in ("done", "failed", "cancelled") for s in states.values()):
                break
            time.sleep(0.1)
        assert states[ids[2]]["state"] == "cancelled" and "cancelled" in states[ids[2]]["error"]
        assert states[ids[1]]["state"] == "done" and states[ids[1]]["result"]["images"]
        assert states[ids[0]]["state"] == "done" and json.loads(states[ids[0]]["result"]["info"])["interrupted"]
        assert c.get("/sd1kit/v1/jobs/job-999999").status_code == 404


def test_options_switch_the_model(api):
    names = api.util_get_model_names()
    assert any(n.startswith("wd-tiny.ckpt [") for n in names) and "sd1kit-demo [built-in]" in names
    target = next(n for n in names if n.startswith("wd-tiny.ckpt"))
    api.util_set_model(target, find_closest=False)
    assert api.get_options()["sd_model_checkpoint"] == target
    r = api.txt2img(prompt="x", steps=1, width=64, height=64, seed=1)
    assert "Model: wd-tiny" in r.info["infotexts"][0]
    api.util_set_model("sd1kit-demo [built-in]", find_closest=False)
    r = api.txt2img(prompt="red circle, blue background", steps=8, width=64, height=64, seed=1)
    assert "Model: sd1kit-demo," in r.info["infotexts"][0]
    api.util_set_model(next(n for n in names if n.startswith("sd15-tiny")), find_closest=False)


def test_progress_and_interrupt(api, server):
    results = {}

    def long_job():
        results["r"] = api.txt2img(prompt="x", steps=40, width=128, height=128, seed=2)

    thread = threading.Thread(target=long_job)
    thread.start()
    seen = None
    deadline = time.time() + 60
    while time.time() < deadline:
        p = api.get_progress()
        if p["progress"] > 0:
            seen = p
            break
        time.sleep(0.05)
    assert seen is not None and seen["state"]["sampling_steps"] == 40 and seen["current_image"]
    api.interrupt()
    thread.join(60)
    assert results["r"].info["interrupted"] is True and results["r"].images  # the unfinished picture comes back
    api.util_wait_for_ready(check_interval=0.1)


def test_embeddings_are_listed_and_used(api, server):
    import httpx

    api.txt2img(prompt="warm up", steps=1, width=64, height=64)  # the model is loaded: widths are known
    with httpx.Client(base_url=server.url) as c:
        loaded = c.get("/sdapi/v1/embeddings").json()["loaded"]
    assert loaded["badhands"]["vectors"] == 2
    r = api.txt2img(prompt="1girl", negative_prompt="badhands", steps=1, width=64, height=64, seed=1)
    assert 'TI hashes: "badhands: ' in r.info["infotexts"][0] or "TI hashes: badhands: " in r.info["infotexts"][0]


def test_lists_and_openapi(server):
    import httpx

    with httpx.Client(base_url=server.url) as c:
        assert {s["name"] for s in c.get("/sdapi/v1/samplers").json()} >= {"Euler a", "DPM++ 2M", "DDIM"}
        assert any(s["label"] == "Karras" for s in c.get("/sdapi/v1/schedulers").json())
        assert [l["name"] for l in c.get("/sdapi/v1/loras").json()] == ["style"]
        assert [u["name"] for u in c.get("/sdapi/v1/upscalers").json()] == ["None", "Lanczos", "Nearest"]
        assert "ram" in c.get("/sdapi/v1/memory").json()
        spec = c.get("/openapi.json").json()
        assert "/sdapi/v1/txt2img" in spec["paths"] and "/sdapi/v1/progress" in spec["paths"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..%2f..%2fsecret", "C:\\models\\x.ckpt",
                                  "sub/../../x.safetensors"])
def test_names_never_become_paths(server, name):
    import httpx

    with httpx.Client(base_url=server.url) as c:
        r = c.post("/sdapi/v1/options", json={"sd_model_checkpoint": name})
        assert r.status_code == 400 and "not a plain name" in r.json()["detail"]
        r = c.post("/sdapi/v1/txt2img", json={"prompt": f"x <lora:{name}:1>", "steps": 1, "width": 64, "height": 64})
        assert r.status_code == 400
        r = c.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64,
                                              "override_settings": {"sd_vae": name}})
        assert r.status_code == 400 and "not a plain name" in r.json()["detail"]


def test_auth_and_bind_rules(models_dir, cli):
    import httpx

    running = Running(ServerConfig(models_dir, auth=("ann", "s3cret")))
    try:
        with httpx.Client(base_url=running.url) as c:
            assert c.get("/sdapi/v1/samplers").status_code == 401
            assert c.get("/sdapi/v1/samplers", auth=("ann", "wrong")).status_code == 401
            assert c.get("/sdapi/v1/samplers", auth=("ann", "s3cret")).status_code == 200
    finally:
        running.stop()
    r = cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert r.code == 2 and "--auth" in r.err


def _rss() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))


def test_load_every_request_answered_none_lost(server):
    """300 requests from 20 concurrent clients: each gets its own picture (its seed back) or a 429."""
    import httpx

    answers, lock = [], threading.Lock()

    def client(index: int):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for k in range(15):
                seed = index * 1000 + k
                r = c.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64,
                                                      "seed": seed, "sampler_name": "Euler"})
                body = r.json()
                got = json.loads(body["info"])["all_seeds"] if r.status_code == 200 else None
                with lock:
                    answers.append((seed, r.status_code, got))

    def interrupter():
        with httpx.Client(base_url=server.url) as c:
            for _ in range(5):
                time.sleep(0.3)
                c.post("/sdapi/v1/interrupt")

    warm = [threading.Thread(target=client, args=(99,))]
    for t in warm:
        t.start()
        t.join()
    before = _rss()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)] + [threading.Thread(target=interrupter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    after = _rss()
    load = [a for a in answers if a[0] < 99000]
    assert len(load) == 300
    assert {code for _, code, _ in load} <= {200, 429}
    done = [(seed, got) for seed, code, got in load if code == 200]
    assert done and all(got == [seed] for seed, got in done)  # each request got its own picture
    assert len({seed for seed, _ in done}) == len(done)  # none duplicated
    assert sum(code == 429 for _, code, _ in load) > 0  # the bounded queue pushed back
    assert after - before < 200 << 20, (before, after)
