"""`sd1kit serve` against requests meant to hurt it: every error in one JSON shape (A1111's `modules/api/api.py`
answers `{"error", "detail", ...}`), bad fields refused before a job starts, bodies and option values bounded,
memory given back after a failed job, and the server answering `/internal/ping` after each."""

from __future__ import annotations

import base64
import gc
import io
import json
import time

import httpx
import pytest
from PIL import Image

from pictures import noise, png_b64
from sd1kit.server.app import ServerConfig
from test_server import Running

SMALL = {"prompt": "x", "steps": 1, "width": 64, "height": 64}
KEYS = {"error", "detail", "errors"}


@pytest.fixture(scope="module")
def server():
    running = Running(ServerConfig(queue_size=4))  # the built-in demo model
    yield running
    running.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c
    with httpx.Client(base_url=server.url, timeout=10) as c:  # still answering after the abuse
        assert c.get("/internal/ping").status_code == 200 and c.get("/internal/ping").json() == {}


def _rss() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))


def _shaped(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert set(body) == KEYS and isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and "\n" not in body["detail"]
    assert body["errors"] is None or isinstance(body["errors"], list)
    return body


def _post_raw(c: httpx.Client, path: str, text: str) -> httpx.Response:
    return c.post(path, content=text.encode(), headers={"content-type": "application/json"})


def _png64() -> str:
    return png_b64(noise(64))


@pytest.mark.parametrize("field,value", [("width", "wide"), ("height", [64]), ("steps", "many"),
                                         ("cfg_scale", "high"), ("seed", {"a": 1}), ("n_iter", "2x"),
                                         ("override_settings", "CLIP_stop_at_last_layers=2"), ("prompt", ["x"])])
def test_non_numeric_fields_are_422_in_the_shape(client, server, field, value):
    jobs = len(server.app.state.sd1kit.jobs.jobs)
    body = _shaped(client.post("/sdapi/v1/txt2img", json={**SMALL, field: value}), 422)
    assert body["errors"] and body["errors"][0]["loc"] == ["body", field] and field in body["detail"]
    assert len(server.app.state.sd1kit.jobs.jobs) == jobs  # no job started


def test_every_wrong_field_is_listed(client):
    body = _shaped(client.post("/sdapi/v1/txt2img", json={**SMALL, "steps": "a", "cfg_scale": "b",
                                                          "enable_hr": True, "hr_resize_x": "c"}), 422)
    assert [e["loc"][-1] for e in body["errors"]] == ["steps", "cfg_scale", "hr_resize_x"]


@pytest.mark.parametrize("text", ["{bad", '{"prompt": "x",}', "", "[1, 2]", '"text"'])
def test_bad_json_is_422_in_the_shape(client, text):
    body = _shaped(_post_raw(client, "/sdapi/v1/txt2img", text), 422)
    assert body["error"] == "RequestValidationError" and body["errors"]


@pytest.mark.parametrize("extra,words", [
    ({"enable_hr": True, "hr_scale": 1000}, "hr_scale"), ({"enable_hr": True, "hr_scale": 0}, "hr_scale"),
    ({"enable_hr": True, "hr_resize_x": 4096, "hr_resize_y": 64}, "hires size"),
    ({"enable_hr": True, "hr_resize_x": 2048, "width": 256, "height": 512}, "hires size"),  # 2048x4096 by aspect
    ({"enable_hr": True, "hr_scale": 4, "width": 1024, "height": 1024}, "hires size"),
    ({"enable_hr": True, "hr_scale": 2, "width": 1024, "height": 1024, "batch_size": 4}, "MP a batch"),
    ({"width": 4096}, "size"), ({"width": 2048, "height": 2048, "batch_size": 8}, "MP a batch"),
    ({"enable_hr": True, "denoising_strength": 5}, "denoising_strength"),
    ({"steps": 1e9}, "steps"), ({"steps": 0}, "steps"),
    ({"batch_size": 64}, "batch_size"), ({"n_iter": 1000}, "n_iter"), ({"seed": 2 ** 70}, "seed"),
])
def test_refusals_are_400_before_any_job(client, server, extra, words):
    jobs = len(server.app.state.sd1kit.jobs.jobs)
    start = time.monotonic()
    body = _shaped(client.post("/sdapi/v1/txt2img", json={**SMALL, **extra}), 400)
    assert time.monotonic() - start < 1.0
    assert words in body["detail"] and len(server.app.state.sd1kit.jobs.jobs) == jobs


def test_hires_fields_without_enable_hr_are_ignored_as_a1111_does(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "hr_scale": 0, "hr_resize_x": 9999, "sd1kit_dry_run": True})
    assert r.status_code == 200 and len(r.json()["plan"]["passes"]) == 1


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client, number):
    body = _shaped(_post_raw(client, "/sdapi/v1/txt2img", '{"prompt": "x", "steps": 1, "width": 64, "height": 64, '
                                                          f'"cfg_scale": {number}}}'), 400)
    assert "cfg_scale" in body["detail"] and "finite" in body["detail"] and "VAE" not in body["detail"]


@pytest.mark.parametrize("extra,words,status", [
    ({"mask_blur": 1e9}, "mask_blur", 400), ({"denoising_strength": 5}, "denoising", 400),
    ({"init_images": "abc"}, "init_images", 422), ({"mask": "not base64"}, "mask", 400),
    ({"mask": 5}, "mask", 422), ({"resize_mode": 1}, "resize_mode", 400)])
def test_img2img_refusals(client, extra, words, status):
    body = _shaped(client.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [_png64()], **extra}), status)
    assert words in body["detail"]


def test_chunked_200mb_body_is_413_without_reading_it(client, server):
    chunk = b" " * (1 << 20)

    def body():
        yield b'{"prompt": "'
        for _ in range(200):
            yield chunk
        yield b'"}'

    gc.collect()
    before = _rss()
    start = time.monotonic()
    r = client.post("/sdapi/v1/txt2img", content=body(), headers={"content-type": "application/json"})
    _shaped(r, 413)
    gc.collect()
    grown = _rss() - before
    assert grown < 100 << 20, grown
    assert time.monotonic() - start < 30


def test_declared_length_over_the_limit_is_413(client, server):
    import socket

    from sd1kit.server.state import MAX_BODY

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:  # (httpx will not lie)
        sock.sendall(f"POST /sdapi/v1/options HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {MAX_BODY + 1}\r\n\r\n{{}}".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    head, _, text = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413") and set(json.loads(text)) == KEYS


def test_large_option_values_are_refused(client):
    r = client.post("/sdapi/v1/options", json={"sd1kit_note": "x" * (40 << 20)})
    assert "KB" in _shaped(r, 413)["detail"]
    _shaped(client.post("/sdapi/v1/options", json={"k" * 500: 1}), 400)
    assert client.post("/sdapi/v1/options", json={"sd1kit_note": "short"}).status_code == 200
    options = client.get("/sdapi/v1/options")
    assert options.json()["sd1kit_note"] == "short" and len(options.content) < 64 << 10


def test_memory_reports_current_rss(client):
    ram = client.get("/sdapi/v1/memory").json()["ram"]
    assert {"free", "used", "total"} <= set(ram) and ram["free"] == ram["total"] - ram["used"]
    assert abs(ram["used"] - _rss()) < 50 << 20  # the current RSS (this process), not the peak
    assert ram["peak"] >= ram["used"]


def test_other_errors_share_the_shape(client, server, monkeypatch):
    _shaped(client.get("/sdapi/v1/no-such-endpoint"), 404)
    _shaped(client.get("/sd1kit/v1/jobs/job-999999"), 404)
    _shaped(client.get("/sdapi/v1/txt2img"), 405)
    _shaped(client.post("/sd1kit/v1/jobs", json={"kind": "upscale"}), 422)
    from sd1kit.server import jobs, routes_models

    def broken(state):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(routes_models, "list_checkpoints", broken)
    assert _shaped(client.get("/sdapi/v1/sd-models"), 500)["error"] == "RuntimeError"

    def full(kind, work, task=None, client=None):
        raise jobs.QueueFull("the queue is full")

    monkeypatch.setattr(server.app.state.sd1kit.jobs, "submit", full)
    r = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert _shaped(r, 429)["error"] == "QueueFull" and int(r.headers["retry-after"]) > 0


def _failing_run(monkeypatch, real, error: BaseException):
    """generate.run that runs two steps of the real generation (its tensors allocated), then raises `error`."""
    from sd1kit.pipeline import generate

    def run(plan, callback=None, should_stop=None):
        def step(i, sigma, latent):
            if i >= 1:
                raise error
        return real(plan, callback=step, should_stop=should_stop)

    monkeypatch.setattr(generate, "run", run)


def _frames(error: BaseException) -> list[str]:
    tb, out = error.__traceback__, []
    while tb is not None:
        out.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return out


def test_failed_jobs_answer_in_the_shape_and_give_memory_back(client, server, monkeypatch):
    from sd1kit.pipeline import generate

    real = generate.run
    big = {**SMALL, "steps": 2, "width": 128, "height": 128, "seed": 1}
    for _ in range(2):  # warm: the model loaded, the allocator at its working size
        assert client.post("/sdapi/v1/txt2img", json=big).status_code == 200
    gc.collect()
    before = _rss()
    _shaped(client.post("/sdapi/v1/txt2img", json={**big, "enable_hr": True, "hr_scale": 1000}), 400)
    _failing_run(monkeypatch, real, RuntimeError("boom mid-way"))
    for _ in range(3):
        assert "boom" in _shaped(client.post("/sdapi/v1/txt2img", json=big), 500)["detail"]
    _failing_run(monkeypatch, real, ValueError("refused mid-way"))
    job = client.post("/sd1kit/v1/jobs", json={"kind": "txt2img", "payload": big}).json()["id"]
    deadline = time.time() + 120
    while client.get(f"/sd1kit/v1/jobs/{job}").json()["state"] not in ("failed", "done") and time.time() < deadline:
        time.sleep(0.1)
    status = client.get(f"/sd1kit/v1/jobs/{job}").json()
    assert status["state"] == "failed" and "refused mid-way" in status["error"]
    failed = server.app.state.sd1kit.jobs.jobs[job].future.exception()
    assert not {f for f in _frames(failed) if "/pipeline/" in f}  # no frames of the failed run kept
    gc.collect()
    after = _rss()
    assert after < before * 1.10, (before, after)


# --- found by reading the server as an attacker (each was unbounded work, a 500 or state left wrong) ---

def _thin_png(w: int, h: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (w, h)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_styles_cannot_blow_a_prompt_up():
    from sd1kit.errors import Sd1kitError
    from sd1kit.server.styles import apply_styles

    start = time.monotonic()
    with pytest.raises(Sd1kitError, match="styles: the styled prompt is over"):
        apply_styles({"prompt": "cat"}, ["dbl"] * 30, [{"name": "dbl", "prompt": "{prompt}, {prompt}",
                                                         "negative_prompt": ""}])
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("path,body,words", [
    ("/sdapi/v1/txt2img", {**SMALL, "styles": ["a"] * 33}, "styles"),
    ("/sdapi/v1/txt2img", {**SMALL, "prompt": "x" * (65 << 10)}, "prompt"),
    ("/sdapi/v1/extra-single-image", {"image": "THIN", "resize_mode": 1, "upscaling_resize_w": 2048,
                                      "upscaling_resize_h": 2048, "upscaler_1": "Lanczos"}, "upscale"),
    ("/sdapi/v1/extra-single-image", {"image": "WIDE", "upscaling_resize": 2, "upscaler_1": "Lanczos"}, "upscale"),
    ("/controlnet/detect", {"controlnet_module": "canny", "controlnet_input_images": ["THIN"],
                            "controlnet_processor_res": 2048}, "processor resolution"),
])
def test_bounded_before_work(client, path, body, words):
    pictures = {"THIN": _thin_png(8, 2048), "WIDE": _thin_png(1000, 1)}
    body = {k: pictures.get(v, v) if isinstance(v, str) else [pictures.get(x, x) for x in v] if
            isinstance(v, list) and k != "styles" else v for k, v in body.items()}
    start = time.monotonic()
    r = client.post(path, json=body)
    assert r.status_code in (400, 422) and words in r.json()["detail"], r.text[:300]
    assert time.monotonic() - start < 2.0


def test_controlnet_units_are_bounded(client):
    unit = {"enabled": True, "module": "canny", "model": "x", "image": _thin_png(8, 2048), "processor_res": 2048}
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "alwayson_scripts": {"ControlNet": {"args": [unit] * 5}}})
    assert r.status_code == 400 and "over 4" in r.json()["detail"]


def test_other_alwayson_scripts_are_named_in_the_warnings(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "alwayson_scripts": {"ADetailer": {"args": [True, {}]}}})
    assert r.status_code == 200 and "ADetailer" in json.loads(r.json()["info"])["warnings"][0]


def test_unknown_options_are_capped_and_known_ones_always_kept(client, server):
    state = server.app.state.sd1kit
    state.options.clear()
    try:
        r = client.post("/sdapi/v1/options", json={f"junk_{i}": i for i in range(1025)})
        assert r.status_code == 400 and "over 1024" in r.json()["detail"]
        assert client.post("/sdapi/v1/options", json={f"junk_{i}": i for i in range(1024)}).status_code == 200
        assert client.post("/sdapi/v1/options", json={"junk_more": 1}).status_code == 400
        r = client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2, "junk_3": 4})  # known / kept
        assert r.status_code == 200 and state.options["CLIP_stop_at_last_layers"] == 2
    finally:
        state.options.clear()


def test_a_refused_options_post_changes_nothing(client, server):
    state = server.app.state.sd1kit
    before = state.model_title
    r = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sd1kit-demo-v [built-in]", "sd_vae": "nope"})
    assert r.status_code == 400 and state.model_title == before and "sd_vae" not in state.options
