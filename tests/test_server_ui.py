"""The web page's own API (`/sd1kit/v1`, issue 22): the option table the page builds its controls from (every row in
one of A1111's groups), the extra networks with A1111's preview pictures, and the models view with its one-click
yaml. Only listed files are read: a name is matched against the listing, never joined as a path."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from sd1kit.server.app import ServerConfig, create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_models):
    from PIL import Image

    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.dev.tiny import write_tiny_model
    from sd1kit.formats.source import open_source

    root = tmp_path_factory.mktemp("ui")
    models = root / "models"
    for kind in ("Stable-diffusion/sub", "Lora", "LyCORIS", "hypernetworks"):
        (models / kind).mkdir(parents=True)
    shutil.copy(tiny_models["sd15"], models / "Stable-diffusion" / "sd15.safetensors")
    write_tiny_model(models / "Stable-diffusion" / "sub" / "vpred.safetensors", prediction="v", markers=True)
    shapes = open_source(tiny_models["sd15"]).shapes
    write_synthetic_adapter(models / "Lora" / "style.safetensors", shapes)
    write_synthetic_adapter(models / "LyCORIS" / "hll.safetensors", shapes, algorithm="loha")
    Image.new("RGB", (16, 16), "red").save(models / "Lora" / "style.preview.png")
    write_synthetic_adapter(models / "Lora" / "odd #1 ?50%.safetensors", shapes)  # a name URLs must quote
    Image.new("RGB", (8, 8), "blue").save(models / "Lora" / "odd #1 ?50%.preview.png")
    outside = root / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    (models / "LyCORIS" / "hll.preview.png").symlink_to(outside)  # a preview pointing outside is not served
    (root / "embeddings").mkdir()
    (root / "embeddings" / "badhands.pt").write_bytes(b"")
    with TestClient(create_app(ServerConfig(models))) as c:
        c.models = models
        yield c


def test_the_option_table_in_a1111_s_groups():
    from sd1kit.pipeline.options import GROUPS, OPTIONS

    attrs = [a for _, group in GROUPS for a in group]
    assert sorted(attrs) == sorted(o.attr for o in OPTIONS) and len(attrs) == len(set(attrs))


def test_options_table_endpoint(client):
    table = client.get("/sd1kit/v1/options-table").json()
    assert table["groups"][0]["name"] == "Generation" and "steps" in table["groups"][0]["options"]
    steps = table["options"]["steps"]
    assert steps["api"] == ["steps"] and steps["kind"] == "int" and steps["bounds"] == [1, 150]
    assert table["options"]["size"]["api"] == ["width", "height"] and table["options"]["size"]["kind"] == "size"
    assert table["options"]["clip_skip"]["api"] == ["override_settings.CLIP_stop_at_last_layers"]
    assert table["options"]["eta"]["infotext"] == "Eta" and table["options"]["eta"]["infotext_alt"] == "Eta DDIM"


def test_networks_with_their_previews(client):
    nets = client.get("/sd1kit/v1/networks").json()
    rows = {r["name"]: r for r in nets["lora"]}
    assert set(rows) == {"style", "hll", "odd #1 ?50%"} and rows["style"]["tag"] == "<lora:style:1>"
    assert client.get(rows["odd #1 ?50%"]["preview"]).status_code == 200
    assert rows["hll"]["folder"] == "LyCORIS" and rows["hll"]["preview"] is None  # its preview is outside
    r = client.get(rows["style"]["preview"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert [e["tag"] for e in nets["embeddings"]] == ["badhands"] and nets["hypernetworks"] == []
    for path in ("/sd1kit/v1/preview/lora/LyCORIS/hll.safetensors", "/sd1kit/v1/preview/lora/Lora/../../secret.png",
                 "/sd1kit/v1/preview/lora/Lora/%2e%2e/secret.png", "/sd1kit/v1/preview/other/Lora/style.safetensors"):
        assert client.get(path).status_code == 404, path


def test_models_view_and_its_one_click_yaml(client):
    view = client.get("/sd1kit/v1/models").json()
    assert any(r["id"] == "nai-v1" or "NovelAI" in r["name"] for r in view["catalog"])
    rows = {e["name"]: e for e in view["scan"]}
    assert rows["sd15.safetensors"]["prediction"] == "epsilon" and rows["sd15.safetensors"]["yaml"] is None
    assert rows["sub/vpred.safetensors"]["prediction"] == "v" and rows["sub/vpred.safetensors"]["yaml"] == "needed"
    r = client.post("/sd1kit/v1/models/yaml", json={"name": "sub/vpred.safetensors"})
    assert r.status_code == 200 and r.json()["yaml"] == "written", r.text
    assert 'parameterization: "v"' in (client.models / "Stable-diffusion" / "sub" / "vpred.yaml").read_text()
    assert client.get("/sd1kit/v1/models").json()["scan"][1]["yaml"] == "present"
    for name, words in (("sd15.safetensors", "needs no yaml"), ("../secret.png", "not a checkpoint")):
        r = client.post("/sd1kit/v1/models/yaml", json={"name": name})
        assert r.status_code == 400 and words in r.json()["detail"]
