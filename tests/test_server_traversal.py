"""Names resolve only inside the configured folders (issue 21): every field of the A1111 API that names a file
(extra networks in each prompt field, the hires ones too; the VAE and checkpoint in override_settings and in
/options; ControlNet units' models) refused for each hostile form of a name: `../`, absolute, URL-encoded,
backslash, NUL, and a plain name of a real file in the server's working directory. Each answer is a 400 in the
error shape naming the field, before any file outside the folders is opened."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from sd1kit.server.app import ServerConfig, create_app

SMALL = {"prompt": "x", "steps": 1, "width": 64, "height": 64}
HOSTILE = {"dotdot": "../../outside", "absolute": "/tmp/outside", "encoded": "..%2f..%2foutside",
           "backslash": "..\\..\\outside", "nul": "outside\x00", "cwd": "outside"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_models):
    from sd1kit.adapters.live import live_shapes
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.pipeline.model import load_model

    root = tmp_path_factory.mktemp("traversal")
    models = root / "models"
    for kind in ("Stable-diffusion", "Lora", "VAE", "ControlNet"):
        (models / kind).mkdir(parents=True)
    (models / "VAE" / "adir").mkdir()  # a folder (or a file of another kind) is not a VAE a name can mean
    (models / "VAE" / "notes.txt").write_text("not a VAE")
    cwd = root / "cwd"  # the server's working directory: real, loadable files a name must not reach
    cwd.mkdir()
    write_synthetic_adapter(cwd / "outside.safetensors", live_shapes(load_model().modules))
    shutil.copy(tiny_models["sd15"], cwd / "outside.ckpt")
    return models, cwd


@pytest.fixture
def client(setup, monkeypatch):
    models, cwd = setup
    monkeypatch.chdir(cwd)
    opened = []
    import sd1kit.adapters.file as adapter_file

    real = adapter_file.open_adapter
    monkeypatch.setattr(adapter_file, "open_adapter", lambda path, *a, **k: (opened.append(str(path)),
                                                                            real(path, *a, **k))[1])
    with TestClient(create_app(ServerConfig(models))) as c:
        c.opened = opened
        yield c
    assert not [p for p in opened if str(cwd) in p or "outside" in p], opened


def _fields(name: str) -> dict:
    """Each name-carrying field -> (path, payload)."""
    tags = {f"{field}:{kind}": ("/sdapi/v1/txt2img", {**SMALL, "enable_hr": True, field: f"a <{kind}:{name}:1>"})
            for field in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
            for kind in ("lora", "lyco", "hypernet")}
    unit = {"enabled": True, "module": "none", "model": name, "image": "x"}
    return {**tags,
            "override_settings.sd_vae": ("/sdapi/v1/txt2img", {**SMALL, "override_settings": {"sd_vae": name}}),
            "override_settings.sd_model_checkpoint": ("/sdapi/v1/txt2img", {
                **SMALL, "override_settings": {"sd_model_checkpoint": name}}),
            "options.sd_vae": ("/sdapi/v1/options", {"sd_vae": name}),
            "options.sd_model_checkpoint": ("/sdapi/v1/options", {"sd_model_checkpoint": name}),
            "controlnet.model": ("/sdapi/v1/txt2img", {**SMALL, "alwayson_scripts": {"ControlNet": {"args": [unit]}}}),
            "img2img prompt": ("/sdapi/v1/img2img", {**SMALL, "prompt": f"a <lora:{name}:1>", "init_images": []})}


CASES = [(form, field) for form in HOSTILE for field in _fields("n")]


@pytest.mark.parametrize("form,field", CASES)
def test_no_name_reaches_outside_the_folders(client, form, field):
    name = HOSTILE[form] + (".safetensors" if "lora" in field or "lyco" in field else "")
    path, payload = _fields(name)[field]
    if path.endswith("img2img"):
        from test_server_abuse import _png64

        payload = {**payload, "init_images": [_png64()]}
    r = client.post(path, json=payload)
    assert r.status_code == 400, (form, field, r.text)
    body = r.json()
    assert set(body) == {"error", "detail", "errors"} and "\n" not in body["detail"]
    assert any(words in body["detail"] for words in ("not a plain name", "not in the models folder", "not in",
                                                     "not supported")), body["detail"]
    assert client.get("/internal/ping").status_code == 200


@pytest.mark.parametrize("name", ["adir", "notes", "notes.txt"])
def test_a_name_means_only_a_file_of_its_kind(client, name):
    r = client.post("/sdapi/v1/options", json={"sd_vae": name})
    assert r.status_code == 400 and "not in the models folder's VAE/" in r.json()["detail"], r.text
