"""The rest of A1111's list endpoints and the ControlNet extension's, answered with A1111's shapes and sd1kit's
real data (issue 21, in part): what SillyTavern and webuiapi fetch beside the core jobs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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
