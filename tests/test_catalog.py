"""The SD1 catalog: schema, the tree in every form (the guide's Mermaid structure), identification by hash and the
settings it brings, weight fingerprints, advice, and scanning a models folder."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sd1kit.catalog import render
from sd1kit.catalog.catalog import catalog, find, match_hash, parse_catalog
from sd1kit.errors import Sd1kitError

FIXTURES = Path(__file__).parent / "fixtures"
EDGE = re.compile(r"^\s*(\S+?)\s+(?:--\((\w+)\)-->|-->\|([^|]*)\||-->)\s*(\S+)\s*$")


def edges(mermaid: str) -> set[tuple[str, str]]:
    found = set()
    for line in mermaid.splitlines():
        m = EDGE.match(line)
        if m:
            found.add((m.group(1), m.group(4)))
    return found


def test_catalog_validates_and_edges_point_to_nodes():
    records = catalog()
    ids = {r.id for r in records}
    assert {"sd1.4", "sd1.5", "wd1.3", "nai-v1", "fluffyrock", "easyfluff", "hll", "easyfluff-hll", "based68",
            "ls-kerberos", "qr-monster-v2"} <= ids
    assert all(e.id in ids for r in records for e in r.parents)
    ef = find("EasyFluff")
    assert (ef.prediction, ef.zero_terminal_snr, ef.settings.cfg_rescale, ef.yaml) == ("v", True, 0.7, "v-prediction")
    assert find("nai").settings.clip_skip == 2 and find("ls_kerberos").prediction == "epsilon"


@pytest.mark.parametrize("bad, message", [
    ('[[model]]\nid = "x"\nname = "X"\nkind = "checkpoint"\ncolour = "red"', "unknown field"),
    ('[[model]]\nid = "x"\nname = "X"\nkind = "checkpoint"\nparents = [{ id = "nope", relation = "merge" }]',
     "not in the catalog"),
    ('[[model]]\nid = "x"\nname = "X"\nkind = "checkpoint"\nfiles = [{ name = "a", sha256 = "XYZ" }]', "hex"),
    ('[[model]]\nid = "x"\nname = "X"\nkind = "spaceship"', "not one of"),
    ('[[model]]\nid = "a"\nname = "A"\nkind = "checkpoint"\nparents = [{ id = "b", relation = "merge" }]\n'
     '[[model]]\nid = "b"\nname = "B"\nkind = "checkpoint"\nparents = [{ id = "a", relation = "merge" }]', "cycle"),
])
def test_schema_rejects_bad_records(bad, message):
    with pytest.raises(Sd1kitError, match=message):
        parse_catalog(bad)


def test_mermaid_has_the_guides_structure():
    guide = (FIXTURES / "guide_tree.mmd").read_text()
    ours = render.mermaid()
    assert edges(guide) <= edges(ours), edges(guide) - edges(ours)
    assert "FluffyRock -->|merge| EasyFluff" in ours  # the guide's labelled merge edge
    for node in ("SD1.2", "SD1.4", "SD1.5", "WD1.3", "NAI1", "FluffyRock", "EasyFluff", "hll-lycoris", "hll+EasyFluff"):
        assert re.search(rf'^{re.escape(node)}\["', ours, re.M), node
    assert 'click NAI1 "https://huggingface.co/NovelAI/nai-anime-v1-full"' in ours


def test_tree_dot_json_and_show(cli):
    tree = cli("models").out
    assert all(f"[{r.id}]" in tree for r in catalog())
    dot = cli("models", "--dot").out
    assert dot.startswith("digraph") and '"fluffyrock" -> "easyfluff" [label="merge"];' in dot
    assert len(json.loads(cli("models", "--json").out)) == len(catalog())
    shown = cli("models", "show", "NAI1").out
    assert "clip skip 2" in shown and "89d59c3dde" in shown and "2024" in shown
    r = cli("models", "show", "easyfluf")
    assert r.code == 2 and "did you mean 'easyfluff'" in r.err


def test_known_hashes():
    record, file = match_hash(short="89d59c3dde")
    assert record.id == "nai-v1" and file.legacy == "925997e9"
    assert match_hash(legacy="4470c325")[0].id == "wd1.3"
    assert match_hash(sha256="0" * 64) is None


@pytest.fixture
def user_catalog(tmp_path, tiny_models, monkeypatch):
    """A user record for a tiny file with its real hash (how anyone adds a model)."""
    path = tmp_path / "mine.safetensors"
    shutil.copy(tiny_models["easyfluff"], path)  # a v-prediction layout, but without its yaml beside it
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    record = tmp_path / "catalog.toml"
    record.write_text(f'''[[model]]
id = "my-fluff"
name = "My Fluff merge"
kind = "checkpoint"
parents = [{{ id = "easyfluff", relation = "merge" }}]
files = [{{ name = "mine.safetensors", sha256 = "{sha}", short = "{sha[:10]}" }}]
prediction = "v"
zero_terminal_snr = true
yaml = "v-prediction"
settings = {{ clip_skip = 2, cfg_rescale = 0.7 }}
''')
    monkeypatch.setenv("SD1KIT_CATALOG", str(record))
    return path


def test_inspect_names_the_model_and_generate_applies_its_settings(cli, user_catalog, tmp_path):
    info = json.loads(cli("inspect", user_catalog, "--json").out)[0]
    assert info["catalog"]["id"] == "my-fluff"
    assert any("v-prediction" in w for w in info["warnings"])
    r = cli("generate", "x", "--model", user_catalog, "--steps", "1", "--size", "64x64", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    assert "My Fluff merge (catalog): using v-prediction, zero terminal SNR, clip skip 2, CFG rescale 0.7" in r.err
    text = next((tmp_path / "o").glob("*.png")).read_bytes()
    assert b"Clip skip: 2" in text and b"CFG Rescale phi: 0.7" in text and b"Noise Schedule: Zero Terminal SNR" in text
    r = cli("generate", "x", "--model", user_catalog, "--steps", "1", "--size", "64x64", "--clip-skip", "1",
            "--out", tmp_path / "o2")
    assert r.code == 0 and "clip skip 2" not in r.err


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base, two fine-tunes of it, a third unrelated fine-tune and an unrelated model (tiny, real layout)."""
    from sd1kit.dev.tiny import write_tiny_model

    folder = tmp_path_factory.mktemp("family")
    write_tiny_model(folder / "base.safetensors", seed=0)
    base = load_file(str(folder / "base.safetensors"))
    for name, seed in (("p1", 1), ("p2", 2), ("other", 3)):
        g = torch.Generator().manual_seed(seed)
        tuned = {k: (v.float() + torch.randn(v.shape, generator=g) * 0.05 * v.float().std().clamp(min=1e-3)).to(v.dtype)
                 if v.is_floating_point() and v.ndim else v for k, v in base.items()}
        save_file(tuned, str(folder / f"{name}.safetensors"))
    write_tiny_model(folder / "alien.safetensors", seed=9)
    return folder


@pytest.mark.parametrize("ratio", [0.25, 0.6])
def test_fingerprint_finds_the_parents_and_the_ratio(family, tmp_path, ratio):
    from sd1kit.catalog.fingerprint import fingerprint
    from sd1kit.merge.recipe import short_recipe
    from sd1kit.merge.run import merge

    merged = merge(short_recipe([str(family / "p1.safetensors"), str(family / "p2.safetensors")], "weighted-sum",
                                {"alpha": ratio}), tmp_path / "mix.safetensors").out
    candidates = sorted(str(p) for p in family.glob("*.safetensors"))
    result = fingerprint(merged, candidates)
    assert Path(result.base).name == "base.safetensors"
    assert {Path(n).name for n in result.mix} == {"p1.safetensors", "p2.safetensors"}
    weights = {Path(n).name: w for n, w in result.mix.items()}
    assert abs(weights["p2.safetensors"] - ratio) <= 0.05 and abs(weights["p1.safetensors"] - (1 - ratio)) <= 0.05
    assert abs(result.similarity[str(family / "other.safetensors")]) < 0.1
    unrelated = fingerprint(family / "other.safetensors",
                            [str(family / n) for n in ("base.safetensors", "p1.safetensors", "p2.safetensors")])
    assert unrelated.mix == {} and "no candidate is related" in unrelated.summary()


def test_recommendations(cli):
    weak = json.loads(cli("models", "recommend", "--vram", "4G", "--json").out)
    assert weak["family"] == "sd1" and weak["pick"] == ["easyfluff", "hll"]
    strong = json.loads(cli("models", "recommend", "--vram", "12G", "--json").out)
    assert strong["family"] == "sdxl" and strong["pick"] == []
    qr = json.loads(cli("models", "recommend", "--vram", "24G", "--for", "qr-code", "--json").out)
    assert qr["family"] == "sd1" and qr["pick"][0] == "qr-monster-v2"
    cpu = cli("models", "recommend", "--ram", "8G").out
    assert "CPU only" in cpu and "EasyFluff" in cpu


def test_scan_reports_each_fixture(cli, tiny_models, tmp_path):
    from sd1kit.dev.adapters import write_synthetic_adapter
    from sd1kit.dev.tiny import write_tiny_model
    from sd1kit.formats.source import open_source

    root = tmp_path / "models"
    sd, lora = root / "Stable-diffusion", root / "Lora"
    sd.mkdir(parents=True)
    lora.mkdir()
    shutil.copy(tiny_models["sd15"], sd / "sd15.safetensors")
    shutil.copy(tiny_models["nai"], sd / "nai.ckpt")
    shutil.copy(tiny_models["easyfluff"], sd / "ef.safetensors")
    shutil.copy(tiny_models["easyfluff"].with_suffix(".yaml"), sd / "ef.yaml")
    write_tiny_model(sd / "marked-vpred.safetensors", prediction="v", markers=True)
    shutil.copytree(tiny_models["nai-official"], sd / "nai-official")
    write_synthetic_adapter(lora / "style.safetensors", open_source(tiny_models["sd15"]).shapes, algorithm="loha")
    (sd / "broken.safetensors").write_bytes(b"not a model")
    r = cli("models", "scan", root, "--json")
    assert r.code == 0, r.err
    rows = {Path(e["path"]).name: e for e in json.loads(r.out)}
    assert rows["sd15.safetensors"]["prediction"] == "epsilon" and rows["sd15.safetensors"]["yaml"] is None
    assert rows["nai.ckpt"]["kind"] == "checkpoint"
    assert rows["ef.safetensors"]["prediction"] == "v" and rows["ef.safetensors"]["yaml"] == "present"
    assert rows["marked-vpred.safetensors"]["yaml"] == "needed"
    assert rows["nai-official"]["kind"] in ("checkpoint", "unet")
    assert rows["style.safetensors"]["kind"] == "lycoris"
    assert rows["broken.safetensors"]["kind"] == "unreadable" and rows["broken.safetensors"]["problem"]
    cli("models", "scan", root, "--write-yaml")
    written = sd / "marked-vpred.yaml"
    assert 'parameterization: "v"' in written.read_text()
    before = (sd / "ef.yaml").read_bytes()
    cli("models", "scan", root, "--write-yaml")
    assert (sd / "ef.yaml").read_bytes() == before  # never overwritten
    assert json.loads(cli("models", "scan", root, "--json").out)[-1]  # still scans after writing
    yaml = cli("models", "yaml", "--prediction", "v").out
    assert yaml.startswith("model:") and 'parameterization: "v"' in yaml
