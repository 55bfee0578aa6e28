"""`sd1kit serve` as real clients use it: every `webuiapi.WebUIApi` method that maps to an A1111 endpoint, and the
call sequences SillyTavern (`src/endpoints/stable-diffusion.js` and the stable-diffusion extension's payload) and
Open WebUI (`backend/open_webui/routers/images.py`) send, against a real server on 127.0.0.1. Each test checks
what a user depends on (the picture's size, its infotext, the files of the models folder in the lists), not only
the status code."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from pictures import from_b64, noise, png_b64
from sd1kit.server.app import ServerConfig
from test_server import Running, models_dir  # noqa: F401  (the A1111 models folder of tiny models)

KEYS = {"error", "detail", "errors"}
STYLES = ('name,prompt,negative_prompt\n'
          '"anime","{prompt}, anime style","lowres, bad hands"\n'
          '"photo","a photo, masterpiece",""\n')


@pytest.fixture(scope="module")
def folder(models_dir):  # noqa: F811
    """test_server's models folder, plus what the other lists read: styles.csv beside models/ (A1111's layout),
    a hypernetwork and a VAE."""
    from safetensors.torch import save_file

    from sd1kit.dev.tiny import tiny_state_dict

    (models_dir.parent / "styles.csv").write_text(STYLES, encoding="utf-8")
    (models_dir / "hypernetworks").mkdir(exist_ok=True)
    (models_dir / "hypernetworks" / "anime_3.pt").write_bytes(b"listed, never loaded")
    (models_dir / "VAE").mkdir(exist_ok=True)
    vae = {k.removeprefix("first_stage_model."): v.contiguous() for k, v in tiny_state_dict().items()
           if k.startswith("first_stage_model.")}
    save_file(vae, str(models_dir / "VAE" / "tiny-vae.safetensors"))
    return models_dir


@pytest.fixture(scope="module")
def server(folder):
    running = Running(ServerConfig(folder, queue_size=8, model="sd15-tiny"))  # the tiny ControlNet's topology
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(server):
    import webuiapi

    return webuiapi.WebUIApi(host="127.0.0.1", port=server.port)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def _picture(seed=0, w=64, h=64) -> Image.Image:
    return noise(w, h, seed)


def _square() -> Image.Image:
    """A white square on black: edges a canny preprocessor must find."""
    a = np.zeros((64, 64, 3), np.uint8)
    a[16:48, 16:48] = 255
    return Image.fromarray(a)


def _b64(image: Image.Image) -> str:
    return png_b64(image)


def _decode(data: str) -> Image.Image:
    return from_b64(data)


def _shaped(body: dict) -> dict:
    assert set(body) == KEYS and isinstance(body["error"], str) and isinstance(body["detail"], str), body
    return body


def _txt2img(api, **kw):
    """webuiapi's txt2img, small; `alwayson_scripts` passed fresh (webuiapi's default dict is shared between
    calls, and a ControlNet unit put in it would stay for every later call)."""
    args = dict(prompt="a cat", steps=1, width=64, height=64, seed=1, sampler_name="Euler", alwayson_scripts={})
    return api.txt2img(**{**args, **kw})


def _model(api, prefix: str) -> str:
    return next(n for n in api.util_get_model_names() if n.startswith(prefix))


# --- generation ---------------------------------------------------------------------------------------------------


def test_txt2img_picture_and_infotext(api):
    r = _txt2img(api, prompt="a red fox", negative_prompt="blurry", steps=2, width=96, height=64, seed=1234,
                 sampler_name="DPM++ 2M", scheduler="karras", cfg_scale=5)
    assert len(r.images) == 1 and r.image.size == (96, 64)  # width x height, not swapped
    text = r.image.info["parameters"]
    assert text == r.info["infotexts"][0]
    assert text.startswith("a red fox\nNegative prompt: blurry\nSteps: 2, Sampler: DPM++ 2M, Schedule type: Karras")
    for part in ("Seed: 1234", "Size: 96x64", "CFG scale: 5", "Model: sd15-tiny"):
        assert part in text, (part, text)
    assert r.info["seed"] == 1234 and r.info["all_seeds"] == [1234] and r.info["width"] == 96
    assert r.parameters["prompt"] == "a red fox"  # A1111 echoes the request
    again = _txt2img(api, prompt="a red fox", negative_prompt="blurry", steps=2, width=96, height=64, seed=1234,
                     sampler_name="DPM++ 2M", scheduler="karras", cfg_scale=5)
    assert np.array_equal(np.asarray(again.image), np.asarray(r.image))  # the same seed, the same picture


def test_txt2img_batch_and_iterations(api):
    r = _txt2img(api, seed=50, batch_size=2, n_iter=2)
    assert [im.size for im in r.images] == [(64, 64)] * 4 and r.info["all_seeds"] == [50, 51, 52, 53]
    assert [im.info["parameters"] for im in r.images] == r.info["infotexts"]
    assert "Seed: 53" in r.images[3].info["parameters"]


def test_txt2img_with_a_controlnet_unit(api):
    import webuiapi

    unit = webuiapi.ControlNetUnit(image=_square(), module="none", model=_controlnet(api), weight=0.8,
                                   resize_mode="Just Resize", processor_res=64)
    r = api.txt2img(prompt="x", steps=1, width=64, height=64, seed=4, sampler_name="Euler",
                    controlnet_units=[unit], alwayson_scripts={})
    assert r.image.size == (64, 64)
    text = r.info["infotexts"][0]
    assert 'ControlNet 0: "Module: none, Model: control_v11p_sd15_canny [' in text and "Weight: 0.8" in text
    plain = _txt2img(api, prompt="x", seed=4)
    assert "ControlNet" not in plain.info["infotexts"][0]  # the unit did not stay behind
    assert not np.array_equal(np.asarray(plain.image), np.asarray(r.image))


def test_img2img_and_inpainting(api):
    source = _picture(1)
    r = api.img2img(images=[source], prompt="a cat", steps=2, width=64, height=64, denoising_strength=0.5, seed=3,
                    sampler_name="Euler", alwayson_scripts={})
    assert r.image.size == (64, 64)
    text = r.image.info["parameters"]
    assert "Denoising strength: 0.5" in text and "Seed: 3" in text and "Steps: 2" in text
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    r = api.img2img(images=[source], mask_image=mask, prompt="a cat", steps=2, width=64, height=64,
                    denoising_strength=0.75, seed=3, inpainting_fill=1, mask_blur=0, sampler_name="Euler",
                    alwayson_scripts={})
    assert r.image.size == (64, 64) and "Masked content: original" in r.info["infotexts"][0]
    out, src = np.asarray(r.image.convert("RGB")).astype(int), np.asarray(source).astype(int)
    assert np.array_equal(out[:8, :8], src[:8, :8])  # outside the mask: the source's pixels
    assert np.abs(out[24:40, 24:40] - src[24:40, 24:40]).mean() > 5  # inside: repainted


def test_png_info_round_trips_a_generated_picture(api):
    picture = _txt2img(api, prompt="1girl, smile", negative_prompt="lowres", steps=2, seed=777).image
    r = api.png_info(picture)
    assert r.info == picture.info["parameters"]
    assert r.info.startswith("1girl, smile\nNegative prompt: lowres\nSteps: 2, Sampler: Euler")
    params = r.json["parameters"]
    assert params["Prompt"] == "1girl, smile" and str(params["Seed"]) == "777" and str(params["Steps"]) == "2"
    assert r.json["items"]["parameters"] == r.info
    blank = api.png_info(_picture(5))  # a picture with no metadata: an empty answer, not an error
    assert blank.info == ""


def test_interrogate_is_refused_in_the_error_shape(api):
    with pytest.raises(RuntimeError) as raised:  # webuiapi raises RuntimeError(status, text) on a non-200
        api.interrogate(_picture(2), model="clip")
    status, text = raised.value.args
    assert status == 400
    body = _shaped(json.loads(text))
    assert "not supported" in body["detail"] and "interrogat" in body["detail"]
    with pytest.raises(RuntimeError) as raised:
        api.interrogate(_picture(2), model="deepdanbooru")
    assert raised.value.args[0] == 400


# --- extras (upscaling) -------------------------------------------------------------------------------------------


def test_extra_single_image_upscales_by_2(api):
    r = api.extra_single_image(_picture(3), upscaling_resize=2, upscaler_1="Lanczos")
    assert len(r.images) == 1 and r.image.size == (128, 128)
    assert isinstance(r.json["html_info"], str) and "Lanczos" in r.json["html_info"]
    r = api.extra_single_image(_picture(3), resize_mode=1, upscaling_resize_w=96, upscaling_resize_h=80,
                               upscaling_crop=True, upscaler_1="Nearest")
    assert r.image.size == (96, 80)  # "scale to" a size, cropped to it


def test_extra_single_image_raw_a1111_shape(http):
    r = http.post("/sdapi/v1/extra-single-image", json={
        "image": _b64(_picture(4)), "resize_mode": 0, "upscaling_resize": 2, "upscaler_1": "Lanczos",
        "upscaler_2": "None", "extras_upscaler_2_visibility": 0, "gfpgan_visibility": 0, "codeformer_visibility": 0,
        "codeformer_weight": 0, "show_extras_results": True, "upscale_first": False})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert {"html_info", "image"} <= set(body) and isinstance(body["html_info"], str)
    assert _decode(body["image"]).size == (128, 128)


def test_extra_batch_images(api, http):
    r = api.extra_batch_images([_picture(5), _picture(6, 32, 48)], name_list=["a.png", "b.png"],
                               upscaling_resize=2, upscaler_1="Lanczos")
    assert [im.size for im in r.images] == [(128, 128), (64, 96)]
    assert isinstance(r.json["html_info"], str)
    raw = http.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": _b64(_picture(7)), "name": "a.png"}], "resize_mode": 0, "upscaling_resize": 2,
        "upscaler_1": "Lanczos"})
    assert raw.status_code == 200, raw.text[:300]
    body = raw.json()
    assert isinstance(body["html_info"], str) and [_decode(i).size for i in body["images"]] == [(128, 128)]


# --- options and models -------------------------------------------------------------------------------------------


def test_options_round_trip(api):
    before = api.get_options()
    assert before["sd_model_checkpoint"].startswith("sd15-tiny.safetensors [")
    try:
        api.set_options({"CLIP_stop_at_last_layers": 2})
        assert api.get_options()["CLIP_stop_at_last_layers"] == 2
        r = _txt2img(api)
        assert "Clip skip: 2" in r.info["infotexts"][0]  # A1111 applies its settings to the next generation
    finally:
        api.set_options({"CLIP_stop_at_last_layers": 1})
    assert api.get_options()["CLIP_stop_at_last_layers"] == 1
    assert "Clip skip" not in _txt2img(api).info["infotexts"][0]


def test_util_set_model_switches_and_reports(api):
    current = api.util_get_current_model()
    assert current.startswith("sd15-tiny.safetensors [")
    target = _model(api, "wd-tiny.ckpt")
    try:
        api.util_set_model(target, find_closest=False)
        assert api.util_get_current_model() == target
        assert "Model: wd-tiny" in _txt2img(api).info["infotexts"][0]
        api.util_set_model("wd tiny", find_closest=True)  # webuiapi's fuzzy match of a name
        assert api.util_get_current_model() == target
    finally:
        api.util_set_model(current, find_closest=False)
    assert api.util_get_current_model() == current


def test_models_in_a_subfolder_are_listed_and_selectable(api, folder, tiny_models):
    """A1111 lists Stable-diffusion/sub/x.safetensors titled "sub/x.safetensors [hash]" and switches to it by that
    title: the title clients send back verbatim (webuiapi.util_set_model, SillyTavern's model list)."""
    sub = folder / "Stable-diffusion" / "sub"
    sub.mkdir(exist_ok=True)
    shutil.copy(tiny_models["sd15"], sub / "extra-tiny.safetensors")
    current = api.util_get_current_model()
    try:
        api.refresh_checkpoints()
        title = _model(api, "sub/extra-tiny.safetensors [")
        r = api.set_options({"sd_model_checkpoint": title})
        assert r is None, r  # A1111 answers null
        assert api.util_get_current_model() == title
    finally:
        api.set_options({"sd_model_checkpoint": current})
        shutil.rmtree(sub)


def test_refresh_checkpoints_finds_a_new_file(api, folder, tiny_models):
    assert api.refresh_checkpoints() in ({}, None)
    path = folder / "Stable-diffusion" / "added-tiny.safetensors"
    shutil.copy(tiny_models["sd15"], path)
    try:
        api.refresh_checkpoints()
        assert any(n.startswith("added-tiny.safetensors [") for n in api.util_get_model_names())
    finally:
        path.unlink()
    api.refresh_checkpoints()
    assert not any(n.startswith("added-tiny") for n in api.util_get_model_names())


def test_sd_models_lists_the_folder(api, folder):
    models = {m["title"]: m for m in api.get_sd_models()}
    assert "sd1kit-demo [built-in]" in models
    sd15 = next(m for t, m in models.items() if t.startswith("sd15-tiny.safetensors ["))
    assert sd15["model_name"] == "sd15-tiny" and sd15["title"] == f"sd15-tiny.safetensors [{sd15['hash']}]"
    assert len(sd15["hash"]) == 10 and len(sd15["sha256"]) == 64 and sd15["hash"] == sd15["sha256"][:10]
    assert sd15["filename"] == str(folder / "Stable-diffusion" / "sd15-tiny.safetensors")
    names = api.util_get_model_names()
    assert names == sorted(names) and any(n.startswith("wd-tiny.ckpt [") for n in names)


# --- lists --------------------------------------------------------------------------------------------------------


def test_samplers_and_schedulers(api):
    samplers = {s["name"]: s for s in api.get_samplers()}
    assert {"Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "DDIM", "UniPC", "LMS", "Heun"} <= set(samplers)
    assert "k_euler_a" in samplers["Euler a"]["aliases"]
    assert api.util_get_sampler_names() == sorted(samplers)
    schedulers = {s["name"]: s for s in api.get_schedulers()}
    assert {"automatic", "uniform", "karras", "exponential", "sgm_uniform"} <= set(schedulers)
    assert schedulers["karras"]["label"] == "Karras" and schedulers["automatic"]["label"] == "Automatic"
    assert api.util_get_scheduler_names() == sorted(schedulers)


def test_upscaler_lists(api):
    names = [u["name"] for u in api.get_upscalers()]
    assert {"Lanczos", "Nearest"} <= set(names)
    latent = [m["name"] for m in api.get_latent_upscale_modes()]
    assert latent[0] == "Latent"
    assert {"Latent (antialiased)", "Latent (bicubic)", "Latent (nearest-exact)"} <= set(latent)


def test_folder_lists(api, folder):
    assert [(l["name"], l["path"]) for l in api.get_loras()] == [("style", str(folder / "Lora" / "style.safetensors"))]
    assert [(v["model_name"], v["filename"]) for v in api.get_sd_vae()] == [
        ("tiny-vae.safetensors", str(folder / "VAE" / "tiny-vae.safetensors"))]
    assert [h["name"] for h in api.get_hypernetworks()] == ["anime_3"]
    assert api.get_prompt_styles() == [
        {"name": "anime", "prompt": "{prompt}, anime style", "negative_prompt": "lowres, bad hands"},
        {"name": "photo", "prompt": "a photo, masterpiece", "negative_prompt": ""}]
    assert isinstance(api.get_face_restorers(), list) and isinstance(api.get_realesrgan_models(), list)
    scripts = api.get_scripts()
    assert isinstance(scripts["txt2img"], list) and isinstance(scripts["img2img"], list)


def test_embeddings(api):
    _txt2img(api)  # the model loaded: the embedding's width is known
    loaded = api.get_embeddings()["loaded"]
    assert loaded["badhands"]["vectors"] == 2
    r = _txt2img(api, negative_prompt="badhands")
    assert "badhands" in r.info["infotexts"][0].split("TI hashes:", 1)[-1]


def test_cmd_flags_and_memory(api, folder):
    flags = api.get_cmd_flags()
    assert flags["api"] is True and flags["ckpt_dir"] == str(folder / "Stable-diffusion")
    assert flags["lora_dir"] == str(folder / "Lora") and flags["vae_dir"] == str(folder / "VAE")
    ram = api.get_memory()["ram"]
    assert ram["used"] > 0 and ram["total"] > ram["used"] and ram["free"] == ram["total"] - ram["used"]


# --- ControlNet extension -----------------------------------------------------------------------------------------


def _controlnet(api) -> str:
    return next(m for m in api.controlnet_model_list() if m.startswith("control_v11p_sd15_canny ["))


def test_controlnet_lists(api):
    assert api.controlnet_version() == 2
    models = api.controlnet_model_list()
    assert len(models) == 1 and models[0].startswith("control_v11p_sd15_canny [") and models[0].endswith("]")
    modules = api.controlnet_module_list()
    assert {"none", "canny"} <= set(modules)


def test_controlnet_detect_raw_a1111_shape(http):
    r = http.post("/controlnet/detect", json={
        "controlnet_module": "canny", "controlnet_input_images": [_b64(_square())], "controlnet_processor_res": 64,
        "controlnet_threshold_a": 100, "controlnet_threshold_b": 200})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["info"] == "Success" and len(body["images"]) == 1
    edges = np.asarray(_decode(body["images"][0]).convert("L"))
    assert edges.shape == (64, 64)
    assert set(np.unique(edges)) <= {0, 255} and (edges == 255).any() and (edges == 0).mean() > 0.5
    assert edges[16:48, 16:48][1:-1, 1:-1][4:-4, 4:-4].max() == 0  # no edge inside the flat square


def test_controlnet_detect_through_webuiapi(api):
    """webuiapi 0.9.17 sends the images as `controlnet_images` (the extension's field is
    `controlnet_input_images`): the extension answers 422 "No image selected"; a server that takes the alias
    answers with the picture. Either is what a client can rely on; a 500 or a 200 without images is not."""
    try:
        r = api.controlnet_detect([_square()], module="canny", processor_res=64, threshold_a=100, threshold_b=200)
    except RuntimeError as e:
        status, text = e.args
        assert status == 422 and _shaped(json.loads(text)), text
    else:
        assert [im.size for im in r.images] == [(64, 64)]


# --- progress, interrupt, skip ------------------------------------------------------------------------------------


def _run_in_thread(api, **kw):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", _txt2img(api, **kw)))
    thread.start()
    return thread, out


def _wait_for_steps(api, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = api.get_progress()
        if p["progress"] > 0:
            return p
        time.sleep(0.02)
    raise AssertionError("the job never showed progress")


def test_progress_idle_and_wait_for_ready(api):
    api.util_wait_for_ready(check_interval=0.1)
    p = api.get_progress()
    assert p["progress"] == 0 and p["state"]["job_count"] == 0 and p["current_image"] is None


def test_progress_while_running_then_interrupt(api):
    thread, out = _run_in_thread(api, steps=40, width=128, height=128, seed=2)
    p = _wait_for_steps(api)
    assert p["state"]["sampling_steps"] == 40 and 0 < p["progress"] < 1 and p["eta_relative"] >= 0
    assert p["current_image"] and _decode(p["current_image"]).size[0] > 0  # the live preview
    assert api.interrupt() == {}
    thread.join(60)
    r = out["r"]
    assert r.info["interrupted"] is True and r.image.size == (128, 128)
    api.util_wait_for_ready(check_interval=0.1)
    after = _txt2img(api, steps=2)  # the stop flag did not leak into the next job
    assert after.info["interrupted"] is False and "Steps: 2" in after.info["infotexts"][0]


def test_skip_ends_the_current_picture_and_idle_calls_are_harmless(api):
    assert api.skip() == {} and api.interrupt() == {}  # nothing running: nothing happens
    assert _txt2img(api, steps=2).info["interrupted"] is False
    thread, out = _run_in_thread(api, steps=40, width=128, height=128, seed=3)
    _wait_for_steps(api)
    assert api.skip() == {}
    thread.join(60)
    assert out["r"].image.size == (128, 128)
    api.util_wait_for_ready(check_interval=0.1)


PROGRESS_KEYS = {"active", "queued", "completed", "progress", "eta", "live_preview", "id_live_preview", "textinfo"}


def test_internal_progress_shape(http):
    r = http.post("/internal/progress", json={"id_task": "task(nosuchtask)", "id_live_preview": -1})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert PROGRESS_KEYS <= set(body)
    assert body["active"] is False and body["queued"] is False and body["completed"] is False


def test_internal_progress_follows_a_forced_task_id(server, http):
    """A1111's txt2img takes `force_task_id`; /internal/progress then reports that task (active while it runs,
    completed after)."""
    task = "task(sd1kitclients1)"
    out = {}

    def run():
        with httpx.Client(base_url=server.url, timeout=120) as c:
            out["r"] = c.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 30, "width": 128, "height": 128,
                                                         "force_task_id": task})

    thread = threading.Thread(target=run)
    thread.start()
    seen, deadline = None, time.time() + 60
    while time.time() < deadline and thread.is_alive():
        body = http.post("/internal/progress", json={"id_task": task, "id_live_preview": -1}).json()
        if body.get("active") and (body.get("progress") or 0) > 0:
            seen = body
            break
        time.sleep(0.02)
    thread.join(60)
    assert out["r"].status_code == 200
    assert seen is not None, "the running task was never reported active"
    assert 0 < seen["progress"] < 1 and PROGRESS_KEYS <= set(seen)
    done = http.post("/internal/progress", json={"id_task": task, "id_live_preview": -1}).json()
    assert done["completed"] is True and done["active"] is False


# --- other clients' sequences -------------------------------------------------------------------------------------


def test_sillytavern_sequence(server):
    """SillyTavern's SD WebUI source: its connect check, the model list and switch (then its wait on /progress),
    the sampler / scheduler / upscaler / VAE lists, and /sd/generate (GET options, then txt2img with the
    extension's payload, which also carries SillyTavern's own `url` and `auth`)."""
    with httpx.Client(base_url=server.url, timeout=120) as c:
        assert c.get("/internal/ping").status_code == 200
        assert c.get("/sdapi/v1/options").status_code == 200  # SillyTavern's /ping
        models = c.get("/sdapi/v1/sd-models")
        assert models.status_code == 200
        titles = [m["title"] for m in models.json()]  # shown and sent back as {value: title}
        current = c.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
        assert current in titles
        target = next(t for t in titles if t.startswith("wd-tiny.ckpt ["))
        try:
            r = c.post("/sdapi/v1/options", json={"sd_model_checkpoint": target})
            assert r.status_code == 200, r.text[:300]
            for _ in range(10):
                p = c.get("/sdapi/v1/progress").json()
                if p["progress"] == 0.0 and p["state"]["job_count"] == 0:
                    break
                time.sleep(0.2)
            assert c.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == target
            samplers = c.get("/sdapi/v1/samplers")
            schedulers = c.get("/sdapi/v1/schedulers")
            assert samplers.status_code == schedulers.status_code == 200
            sampler_names = [s["name"] for s in samplers.json()]
            scheduler_names = [s["name"] for s in schedulers.json()]
            assert "DDIM" in sampler_names and "normal" in scheduler_names  # SillyTavern's defaults
            upscalers, latent = c.get("/sdapi/v1/upscalers"), c.get("/sdapi/v1/latent-upscale-modes")
            assert upscalers.status_code == latent.status_code == 200
            merged = [u["name"] for u in upscalers.json()]
            merged[1:1] = [m["name"] for m in latent.json()]
            assert "Latent" in merged and "Lanczos" in merged
            vaes = c.get("/sdapi/v1/sd-vae")
            assert vaes.status_code == 200 and [v["model_name"] for v in vaes.json()] == ["tiny-vae.safetensors"]
            assert c.get("/sdapi/v1/options").status_code == 200  # /sd/generate's Forge check
            payload = {
                "url": server.url, "auth": "",
                "prompt": "best quality, absurdres, aesthetic, 1girl, smile",
                "negative_prompt": "lowres, bad anatomy, bad hands, text, error, cropped, worst quality",
                "sampler_name": "DDIM", "scheduler": "normal", "steps": 2, "cfg_scale": 7, "width": 64,
                "height": 64, "restore_faces": False, "enable_hr": False, "hr_upscaler": "Latent", "hr_scale": 2.0,
                "hr_additional_modules": [], "denoising_strength": 0.7, "hr_second_pass_steps": 0, "seed": 31337,
                "override_settings": {"CLIP_stop_at_last_layers": 1}, "override_settings_restore_afterwards": True,
                "clip_skip": 1, "save_images": True, "send_images": True, "do_not_save_grid": False,
                "do_not_save_samples": False,
            }
            r = c.post("/sdapi/v1/txt2img", json=payload)
            assert r.status_code == 200, r.text[:300]
            image = _decode(r.json()["images"][0])  # SillyTavern keeps data.images[0]
            assert image.size == (64, 64)
            text = image.info["parameters"]
            assert "Sampler: DDIM" in text and "Seed: 31337" in text and "Model: wd-tiny" in text
        finally:
            c.post("/sdapi/v1/options", json={"sd_model_checkpoint": current})


def test_sillytavern_upscaler_list_as_a1111_gives_it(http):
    """SillyTavern inserts /latent-upscale-modes after the first /upscalers entry ("0 = None, then Latent
    Upscalers, then Upscalers"). A1111's /upscalers is its pixel upscalers, "None" first, and no latent modes:
    the merged list has each name once."""
    upscalers = [u["name"] for u in http.get("/sdapi/v1/upscalers").json()]
    latent = [m["name"] for m in http.get("/sdapi/v1/latent-upscale-modes").json()]
    merged = upscalers[:1] + latent + upscalers[1:]
    assert upscalers[0] == "None", upscalers
    assert len(merged) == len(set(merged)), merged


def test_open_webui_sequence(server):
    """Open WebUI's AUTOMATIC1111 engine: the model from /options, the model list from /sd-models ({id: title,
    name: model_name}), set_image_model (GET /options, then POST the whole options dict back with another
    sd_model_checkpoint), and txt2img with its small payload; `authorization` sent even when empty."""
    headers = {"authorization": ""}
    with httpx.Client(base_url=server.url, timeout=120, headers=headers) as c:
        options = c.get("/sdapi/v1/options")
        assert options.status_code == 200
        current = options.json()["sd_model_checkpoint"]
        models = c.get("/sdapi/v1/sd-models")
        assert models.status_code == 200
        listed = [{"id": m["title"], "name": m["model_name"]} for m in models.json()]
        target = next(m["id"] for m in listed if m["name"] == "wd-tiny")
        try:
            options = c.get("/sdapi/v1/options").json()
            options["sd_model_checkpoint"] = target
            r = c.post("/sdapi/v1/options", json=options)
            assert r.status_code == 200, r.text[:300]
            assert c.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == target
            r = c.post("/sdapi/v1/txt2img", json={"prompt": "a lighthouse at dusk", "batch_size": 1, "width": 64,
                                                  "height": 64, "steps": 1})
            assert r.status_code == 200, r.text[:300]
            body = r.json()
            assert [_decode(i).size for i in body["images"]] == [(64, 64)] and json.loads(body["info"])
            r = c.post("/sdapi/v1/txt2img", json={"prompt": "a lighthouse at dusk", "batch_size": 1, "width": 64,
                                                  "height": 64, "steps": 1,
                                                  "override_settings": {"sd_model_checkpoint": current}})
            assert r.status_code == 200, r.text[:300]
            assert "Model: sd15-tiny" in json.loads(r.json()["info"])["infotexts"][0]
        finally:
            c.post("/sdapi/v1/options", json={"sd_model_checkpoint": current})


def test_override_settings_are_restored_afterwards(api, http):
    """A1111 (processing.process_images) puts every override back after the job when
    `override_settings_restore_afterwards` is true, its default: a per-request model leaves the global one."""
    current = api.util_get_current_model()
    other = _model(api, "wd-tiny.ckpt")
    r = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64,
                                             "override_settings": {"sd_model_checkpoint": other,
                                                                   "CLIP_stop_at_last_layers": 2}})
    try:
        assert r.status_code == 200, r.text[:300]
        text = json.loads(r.json()["info"])["infotexts"][0]
        assert "Model: wd-tiny" in text and "Clip skip: 2" in text
        options = api.get_options()
        assert options["sd_model_checkpoint"] == current and options["CLIP_stop_at_last_layers"] == 1
        assert "Model: sd15-tiny" in _txt2img(api).info["infotexts"][0]
    finally:
        api.set_options({"sd_model_checkpoint": current})
