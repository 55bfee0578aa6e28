"""The rest of A1111's list endpoints and the ControlNet extension's, answered with A1111's shapes and sd1kit's
real data (issue 21, in part): what SillyTavern and webuiapi fetch beside the core jobs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pictures import from_b64, noise, png_b64
from sd1kit.server.app import ServerConfig, create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from sd1kit.dev.controlnet import write_tiny_controlnet

    root = tmp_path_factory.mktemp("compat")
    models = root / "models"
    for kind in ("Stable-diffusion", "ControlNet", "hypernetworks"):
        (models / kind).mkdir(parents=True)
    write_tiny_controlnet(models / "ControlNet" / "control_v11p_sd15_canny.safetensors", "ldm")
    (models / "hypernetworks" / "anime_3.pt").write_bytes(b"not loaded by a listing")
    (root / "styles.csv").write_text('name,prompt,negative_prompt\nanime,"{prompt}, anime style","lowres"\n'
                                     ',"no name",""\nplain,"masterpiece",\n', encoding="utf-8")
    with TestClient(create_app(ServerConfig(models))) as c:
        yield c


def test_lists_answer_as_a1111(client):
    from sd1kit.pipeline.hires import LATENT_UPSCALERS

    assert client.get("/sdapi/v1/latent-upscale-modes").json() == [{"name": n} for n in LATENT_UPSCALERS]
    assert client.get("/sdapi/v1/prompt-styles").json() == [
        {"name": "anime", "prompt": "{prompt}, anime style", "negative_prompt": "lowres"},
        {"name": "plain", "prompt": "masterpiece", "negative_prompt": ""}]
    assert client.get("/sdapi/v1/hypernetworks").json()[0]["name"] == "anime_3"
    assert client.get("/sdapi/v1/face-restorers").json() == []
    assert client.get("/sdapi/v1/realesrgan-models").json() == []
    assert client.get("/sdapi/v1/scripts").json() == {"txt2img": [], "img2img": []}
    assert client.get("/sdapi/v1/script-info").json() == [] and client.get("/sdapi/v1/extensions").json() == []
    flags = client.get("/sdapi/v1/cmd-flags").json()
    assert flags["api"] is True and flags["ckpt_dir"].endswith("Stable-diffusion")


def test_controlnet_extension_lists(client):
    assert client.get("/controlnet/version").json() == {"version": 2}
    models = client.get("/controlnet/model_list").json()["model_list"]
    assert len(models) == 1 and models[0].startswith("control_v11p_sd15_canny [")
    modules = client.get("/controlnet/module_list").json()
    assert "canny" in modules["module_list"] and set(modules["module_detail"]) == set(modules["module_list"])


def test_refresh_reload_and_refusals(client):
    for path in ("/sdapi/v1/refresh-vae", "/sdapi/v1/refresh-embeddings", "/sdapi/v1/refresh-checkpoints",
                 "/sdapi/v1/refresh-loras", "/sdapi/v1/unload-checkpoint", "/sdapi/v1/reload-checkpoint"):
        assert client.post(path).status_code == 200, path
    r = client.post("/sdapi/v1/interrogate", json={"image": "", "model": "clip"})
    assert r.status_code == 400 and "not supported" in r.json()["detail"]


def test_scheduler_automatic_by_its_id_is_written_as_automatic(client):
    """`/schedulers` lists "automatic" as the id of A1111's "Automatic": a client sending it gets the infotext
    A1111 writes for it (it was written "Schedule type: Uniform")."""
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 1, "width": 64, "height": 64,
                                               "sampler_name": "Euler a", "scheduler": "automatic"})
    assert r.status_code == 200, r.text
    info = r.json()["info"]
    assert "Schedule type: Uniform" not in info and "Sampler: Euler a" in info, info


SMALL = {"prompt": "a cat", "steps": 1, "width": 64, "height": 64}


def _dry(client, **extra) -> dict:
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "sd1kit_dry_run": True, **extra})
    assert r.status_code == 200, r.text
    return r.json()["plan"]


@pytest.fixture
def clean(client):
    state = client.app.state.sd1kit
    title = state.model_title
    yield client
    state.options.clear()
    state.model_title = title


def test_stored_options_apply_to_generation_under_the_payload_s_overrides(clean):
    """A1111's settings that change pictures, POSTed to /options, apply to every later job (they changed nothing
    before), recorded as coming from the options; a payload's override_settings still win."""
    client = clean
    assert _dry(client)["settings"]["clip_skip"]["source"] != "options"
    r = client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337,
                                               "randn_source": "CPU", "emphasis": "No norm"})
    assert r.status_code == 200, r.text
    settings = _dry(client)["settings"]
    assert settings["clip_skip"] == {"value": 2, "source": "options"}
    assert settings["ensd"] == {"value": 31337, "source": "options"}
    assert settings["rng"]["value"] == "CPU" and settings["emphasis"]["value"] == "no-norm"
    settings = _dry(client, override_settings={"CLIP_stop_at_last_layers": 3})["settings"]
    assert settings["clip_skip"] == {"value": 3, "source": "api"} and settings["ensd"]["value"] == 31337
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2


@pytest.mark.parametrize("options,status", [({"CLIP_stop_at_last_layers": "two"}, 422),
                                            ({"CLIP_stop_at_last_layers": 40}, 400), ({"randn_source": "QPU"}, 400),
                                            ({"eta_noise_seed_delta": -5}, 400)])
def test_bad_generation_options_are_refused_before_they_are_kept(clean, options, status):
    client = clean
    before = client.get("/sdapi/v1/options").json()
    r = client.post("/sdapi/v1/options", json=options)
    assert r.status_code == status and next(iter(options)) in r.json()["detail"], r.text
    assert client.get("/sdapi/v1/options").json() == before
    assert _dry(client)["settings"]["rng"]["value"] == "GPU"


def test_override_settings_restore_afterwards(clean):
    """By default (A1111's `override_settings_restore_afterwards: true`) a job's model and settings are its own;
    with false they stay set, the model among them."""
    client = clean
    start = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    other = next(m["title"] for m in client.get("/sdapi/v1/sd-models").json() if m["title"] != start)
    overrides = {"sd_model_checkpoint": other, "CLIP_stop_at_last_layers": 2}
    assert _dry(client, override_settings=overrides)["model"]["name"] == other.split(" [")[0]
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == start and options["CLIP_stop_at_last_layers"] == 1
    assert _dry(client)["model"]["name"] == start.split(" [")[0]
    _dry(client, override_settings=overrides, override_settings_restore_afterwards=False)  # a dry run keeps nothing
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == start
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": overrides,
                                               "override_settings_restore_afterwards": False})
    assert r.status_code == 200, r.text
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == other and options["CLIP_stop_at_last_layers"] == 2
    assert _dry(client)["settings"]["clip_skip"] == {"value": 2, "source": "options"}


@pytest.mark.parametrize("field,value", [("tiling", True), ("script_name", "x/y/z plot"),
                                         ("refiner_checkpoint", "sd_xl_refiner"), ("s_churn", 0.5),
                                         ("hr_checkpoint_name", "other"), ("disable_extra_networks", True)])
def test_unsupported_fields_that_change_the_picture_are_refused(client, field, value):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, field: value})
    assert r.status_code == 400 and r.json()["detail"].startswith(f"{field}: ") and "not supported" in r.text


def test_unsupported_fields_that_keep_the_picture_are_warned(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "restore_faces": True, "tiling": False, "script_name": ""})
    assert r.status_code == 200, r.text
    import json

    warnings = json.loads(r.json()["info"])["warnings"]
    assert any(w.startswith("restore_faces: ") and "not face-restored" in w for w in warnings)


def test_styles_apply_as_a1111_applies_them(client):
    """`{prompt}` in a style is replaced by the prompt, other styles are appended with ", ", in order; the
    negative prompt gets each style's negative text; an unknown style is refused."""
    plan = _dry(client, styles=["anime", "plain"], negative_prompt="blurry")
    assert plan["passes"][0]["prompt_schedule"][0]["text"] == "a cat, anime style, masterpiece"
    assert "Negative prompt: blurry, lowres\n" in plan["infotext"]
    plan = _dry(client, styles=["plain", "anime"], prompt="")
    assert plan["passes"][0]["prompt_schedule"][0]["text"] == "masterpiece, anime style"
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "styles": ["anime", "nope"]})
    assert r.status_code == 400 and "'nope'" in r.json()["detail"]


def test_controlnet_unit_fields_are_typed(client):
    unit = {"enabled": True, "module": "none", "model": "control_v11p_sd15_canny", "weight": "heavy", "image": "x"}
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "alwayson_scripts": {"ControlNet": {"args": [unit]}}})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "alwayson_scripts", "ControlNet", "args", "0", "weight"]


def test_hires_prompt_names_are_checked(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "enable_hr": True, "hr_prompt": "x <lora:../../secret:1>"})
    assert r.status_code == 400 and r.json()["detail"].startswith("hr_prompt: <lora:...>"), r.text


def _picture(w=64, h=48, text=None) -> str:
    return png_b64(noise(w, h, 1), text)


def _open(b64: str):
    return from_b64(b64)


@pytest.mark.parametrize("fields,size", [
    ({"upscaling_resize": 2, "upscaler_1": "Lanczos"}, (128, 96)),
    ({"upscaling_resize": 1.5, "upscaler_1": "Nearest"}, (96, 72)),
    ({"upscaling_resize": 1.3, "upscaler_1": "Lanczos"}, (80, 56)),  # A1111: rounded down to a multiple of 8
    ({"resize_mode": 1, "upscaling_resize_w": 100, "upscaling_resize_h": 100, "upscaler_1": "Lanczos"}, (100, 100)),
    ({"resize_mode": 1, "upscaling_resize_w": 100, "upscaling_resize_h": 100, "upscaling_crop": False,
      "upscaler_1": "Lanczos"}, (128, 96)),  # by max(100/64, 100/48) = 2.083, rounded down to /8
    ({"upscaler_1": "None"}, (64, 48)),
])
def test_extras_upscale_as_a1111(client, fields, size):
    r = client.post("/sdapi/v1/extra-single-image", json={"image": _picture(text="a cat\nSteps: 20"), **fields})
    assert r.status_code == 200, r.text
    out = _open(r.json()["image"])
    assert out.size == size and out.info["parameters"] == "a cat\nSteps: 20"  # the picture's recipe is kept
    if fields["upscaler_1"] != "None":
        assert out.info["postprocessing"].startswith("Postprocess upscale ") and "<p>" in r.json()["html_info"]


def test_extras_lanczos_is_pil_s_and_the_second_upscaler_blends():
    import base64

    import numpy as np
    from PIL import Image

    from sd1kit.pipeline.upscale import Upscale, run_upscale

    image = _open(_picture()).convert("RGB")
    lanczos = run_upscale(image, Upscale("Lanczos", 2.0))
    assert np.array_equal(np.asarray(lanczos), np.asarray(image.resize((128, 96), Image.LANCZOS)))
    blend = run_upscale(image, Upscale("Lanczos", 2.0, second="Nearest", second_visibility=0.5))
    expected = Image.blend(lanczos, image.resize((128, 96), Image.NEAREST), 0.5)
    assert np.array_equal(np.asarray(blend), np.asarray(expected)) and base64


def test_extras_batch_and_refusals(client):
    r = client.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": _picture(), "name": "a.png"},
                                                                        {"data": _picture(32, 32), "name": "b.png"}],
                                                          "upscaling_resize": 2, "upscaler_1": "Lanczos"})
    assert r.status_code == 200, r.text
    assert [_open(i).size for i in r.json()["images"]] == [(128, 96), (64, 64)]
    for fields, status, words in (({"upscaler_1": "ESRGAN_4x"}, 400, "upscaler_1"),
                                  ({"upscaler_1": "Latent"}, 400, "upscaler_1"),
                                  ({"gfpgan_visibility": 1}, 400, "face restoration"),
                                  ({"upscaling_resize": 100}, 422, "upscaling_resize"),
                                  ({"upscaler_1": "Lanczos", "upscaling_resize": 8}, 400, "MP"),
                                  ({"image": "not base64!"}, 400, "image")):
        body = {"image": _picture(1024, 1024) if "MP" == words else _picture(), **fields}
        r = client.post("/sdapi/v1/extra-single-image", json=body)
        assert r.status_code == status and words in r.json()["detail"], (fields, r.text)


def test_controlnet_detect_runs_the_preprocessors(client):
    import cv2
    import numpy as np

    picture = _picture(64, 64)
    r = client.post("/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images": [picture],
                                                "controlnet_processor_res": 64, "controlnet_threshold_a": 50,
                                                "controlnet_threshold_b": 120})
    assert r.status_code == 200 and r.json()["info"] == "Success", r.text
    edges = np.asarray(_open(r.json()["images"][0]).convert("L"))
    assert np.array_equal(edges, cv2.Canny(np.asarray(_open(picture).convert("RGB")), 50, 120))
    r = client.post("/controlnet/detect", json={"controlnet_module": "openpose", "controlnet_input_images": [picture]})
    assert r.status_code == 400 and "openpose" in r.json()["detail"]


def test_internal_progress_knows_a_task_by_its_id(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "force_task_id": "task(abc)"})
    assert r.status_code == 200
    done = client.post("/internal/progress", json={"id_task": "task(abc)", "id_live_preview": -1}).json()
    assert done["completed"] is True and done["active"] is False and done["textinfo"] == "Waiting..."
    assert set(done) == {"active", "queued", "completed", "progress", "eta", "live_preview", "id_live_preview",
                         "textinfo"}
    unknown = client.post("/internal/progress", json={"id_task": "task(nope)"}).json()
    assert not unknown["active"] and not unknown["completed"] and not unknown["queued"]


def test_docs_work_offline(client):
    """/docs and /redoc load their scripts from the server itself (an offline machine showed a blank page)."""
    import re

    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
        for url in urls:
            if url.endswith(".js"):
                assert client.get(url).status_code == 200 and len(client.get(url).content) > 100_000, url
