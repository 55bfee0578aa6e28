"""Hostile model files through every command that opens one (issue 20): each ends in seconds and bounded memory,
with exit 2 and one line naming the file and the reason (`models scan` lists it as unreadable and goes on), and
no payload ever runs. The cases are in sd1kit.dev.hostile_files; bench/hostile.py prints the same runs as a table.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile

import pytest
import torch

from sd1kit.dev import hostile_files as hf
from sd1kit.dev.hostile import SCAN, case_builder, expand, prepare, run_command
from sd1kit.errors import BadFileError
from sd1kit.formats.ckpt import load_torch_file, scan_pickle_file

MAX_SECONDS, MAX_MB = 5.0, 500
CASES = {c.name: c for c in hf.CASES + hf.EMBEDDING_CASES}
RUNS = [(name, i) for name, c in CASES.items() for i in range(len(c.commands))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return case_builder(CASES, tmp_path_factory.mktemp)


@pytest.mark.parametrize("name,index", RUNS, ids=[f"{n}-{CASES[n].commands[i][0]}{i}" for n, i in RUNS])
def test_hostile_file_through_command(name, index, built):
    case = CASES[name]
    folder, values = built(name)
    template = case.commands[index]
    outcome = run_command(expand(template, **values), timeout=60)
    assert not (folder / "pwned").exists(), "the payload ran"
    assert outcome.exit_code is not None, f"killed: {outcome.describe()}"
    filename = values["file"].rsplit("/", 1)[-1]
    if template == SCAN:  # a listing goes on past a bad file, which it reports as unreadable
        assert outcome.exit_code == 0, outcome.describe()
        entry = outcome.stdout.split(values["file"], 1)[1].split("\n/", 1)[0]
        assert "problem:" in entry and re.search(case.expect, entry, re.I), entry
        assert outcome.seconds < MAX_SECONDS and outcome.peak_rss_mb < MAX_MB, outcome.describe()
        return
    assert outcome.exit_code == case.exit_code, outcome.describe()
    if case.exit_code == 0:  # a bad file among good ones: one warning line, the job goes on
        warnings = [l for l in outcome.lines if filename in l]
        assert len(warnings) == 1 and "warning" in warnings[0] and re.search(case.expect, warnings[0]), outcome.stderr
        return
    assert outcome.seconds < MAX_SECONDS and outcome.peak_rss_mb < MAX_MB, outcome.describe()
    assert len(outcome.lines) == 1, outcome.stderr
    line = outcome.lines[0]
    assert filename in line and re.search(case.expect, line, re.I) and "internal error" not in line, line


def test_the_hidden_payloads_are_real(tmp_path):
    """Sanity check of the suite: the payload runs under pickle.loads, and the tricks carry it."""
    marker = tmp_path / "pwned"
    pickle.loads(hf.payload(marker))
    assert marker.exists()
    first = hf.torch_zip_members()[0][0]
    duplicate = hf.write_zip([(first, hf.payload(marker)), *hf.torch_zip_members()])
    with zipfile.ZipFile(io.BytesIO(duplicate)) as z:
        assert z.read(z.infolist()[0]) == hf.payload(marker)  # the first entry, the one torch's reader takes
    hidden = tmp_path / "comment.ckpt"
    hidden.write_bytes(hf.comment_hidden_archive())
    assert torch.load(hidden, weights_only=True) == {"hidden": 1}  # torch reads the archive the comment hides
    import torch._weights_only_unpickler as weights_only  # the graph bombs are built by torch's own unpickler

    assert len(weights_only.load(io.BytesIO(hf.memo_laughs(4)), encoding="utf-8")) == 5
    assert len(weights_only.load(io.BytesIO(hf.exponential_key(4)), encoding="utf-8")[1]) == 1


def _save(obj, path, **kw):
    torch.save(obj, path, **kw)
    return path


def test_real_torch_archives_still_load(tmp_path):
    """torch.save's zip (data descriptors, zip64 end records), the legacy stream, and a zip repacked by another
    tool with deflated members all load; the view is the same as torch's."""
    sd = {"w": torch.arange(6.0).reshape(2, 3), "nested": {"b": torch.ones(2)},
          "token_embedding": torch.zeros(49408, 768, dtype=torch.float16)}  # 76 MB: an SD1 tensor, deflated
    new = _save(sd, tmp_path / "new.pt")
    old = _save(sd, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    repacked = tmp_path / "repacked.pt"
    with zipfile.ZipFile(new) as z, zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            out.writestr(info.filename, z.read(info))
    for path in (new, old, repacked):
        assert scan_pickle_file(path).safe
        loaded = load_torch_file(path)
        assert torch.equal(loaded["w"], sd["w"]) and torch.equal(loaded["nested"]["b"], sd["nested"]["b"])


def test_refusals_name_the_ambiguity(tmp_path):
    members = hf.torch_zip_members()
    path = tmp_path / "trailing.pt"
    path.write_bytes(hf.write_zip(members) + b"\0" * 100)
    with pytest.raises(BadFileError, match="end record is not at the end"):
        scan_pickle_file(path)
    path.write_bytes(hf.write_zip([(members[0][0], members[0][1]), ("other/x", b"1"), *members[1:]]))
    with pytest.raises(BadFileError, match="outside the archive folder"):
        scan_pickle_file(path)


def _unshare_works() -> bool:
    import shutil
    import subprocess

    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (a private mount namespace) for real ENOSPC/EROFS")
def test_full_disk_and_read_only_folder_say_so(tmp_path):
    """A real 64 KiB tmpfs and a real read-only mount (in a private mount namespace): each failure is its own
    one-line message naming the output, and no temporary file stays behind."""
    import shlex
    import subprocess
    import sys

    (tmp_path / "full").mkdir()
    (tmp_path / "ro").mkdir()
    model = prepare(CASES["garbage"], tmp_path / "case")["model"]
    sd1kit = [sys.executable, "-c", "import sys; from sd1kit.cli import main; sys.exit(main())"]
    script = (f"mount -t tmpfs -o size=64k tmpfs {tmp_path}/full && mount -t tmpfs -o ro tmpfs {tmp_path}/ro && "
              + " ; ".join(f"{shlex.join(sd1kit + ['convert', model, f'{tmp_path}/{d}/out.safetensors'])}; "
                           f"echo rc=$?; ls -A {tmp_path}/{d}" for d in ("full", "ro")))
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    errors = [l for l in result.stderr.splitlines() if l.startswith("sd1kit:")]
    assert result.stdout.split() == ["rc=2", "rc=2"], (result.stdout, result.stderr)  # nothing left in either
    assert errors == [f"sd1kit: {tmp_path}/full/out.safetensors: no space left on the device",
                      f"sd1kit: {tmp_path}/ro/out.safetensors: read-only file system: cannot write here"], errors


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path, cli):
    """Only our own pattern, only for the target written, only when the writer's process is gone and the file is
    older than the running process; the output gets 0666 less the umask (not mkstemp's 0600)."""
    import os
    import subprocess
    import time

    model = prepare(CASES["garbage"], tmp_path)["model"]
    out = tmp_path / "out.safetensors"
    dead = _finished_pid()
    running = subprocess.Popen(["sleep", "30"])
    try:
        stale = tmp_path / f".out.safetensors.sd1kit-{dead}-abcd1234.tmp"
        writing = tmp_path / f".out.safetensors.sd1kit-{running.pid}-wxyz9876.tmp"  # a concurrent writer's
        other = tmp_path / f".other.safetensors.sd1kit-{dead}-abcd1234.tmp"
        foreign = tmp_path / ".out.safetensors.backup01.tmp"  # not ours: no sd1kit-PID in the name
        for path in (stale, writing, other, foreign):
            path.write_bytes(b"x" * 1000)
            os.utime(path, (time.time() - 3600,) * 2)
        result = cli("convert", model, out)
        assert result.code == 0, result.err
        assert not stale.exists() and writing.exists() and other.exists() and foreign.exists()
        assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    finally:
        running.kill()
        running.wait()


def _finished_pid() -> int:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _umask() -> int:
    from sd1kit.formats.atomic import _UMASK

    return _UMASK


def test_a_picture_cannot_point_generation_outside_the_models_folders(tmp_path, cli):
    """`<lora:/abs/path>` or `<lora:../x>` in a picture's prompt names no file: LoRAs resolve inside the LoRA
    folders only (as A1111's network lists), also for a name that is an existing path."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    values = prepare(CASES["garbage"], tmp_path / "case")
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Lora").mkdir()
    (models / "Stable-diffusion" / "tiny.safetensors").write_bytes(open(values["model"], "rb").read())
    outside = values["lora"]  # an existing LoRA, outside models/Lora
    for name in (outside, "../../case/tiny-lora", "../case/tiny-lora.safetensors"):
        info = PngInfo()
        info.add_text("parameters", f"a cat <lora:{name}:1>\nSteps: 1, Sampler: Euler, CFG scale: 7, Seed: 1, "
                                    "Size: 64x64, Model: tiny")
        picture = tmp_path / "picture.png"
        Image.new("RGB", (64, 64)).save(picture, pnginfo=info)
        result = cli("generate", "--from", picture, "--models-dir", models, "--dry-run")
        assert result.code == 2 and f"{name!r} is not in {models / 'Lora'}" in result.err, result.err
        assert len([l for l in result.err.splitlines() if l.strip()]) == 1


def test_a_models_folder_with_bad_files_still_serves(tmp_path):
    """The server's lists go on past bad files: a hostile checkpoint is listed by its hash (never unpickled) and
    refused with its reason when chosen, a broken link is left out, a hostile embedding is listed as skipped."""
    from fastapi.testclient import TestClient

    from sd1kit.server.app import ServerConfig, create_app

    values = prepare(CASES["garbage"], tmp_path / "case")
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Lora").mkdir()
    (tmp_path / "embeddings").mkdir()
    (models / "Stable-diffusion" / "tiny.safetensors").write_bytes(open(values["model"], "rb").read())
    (models / "Stable-diffusion" / "deep.ckpt").write_bytes(hf.write_zip(hf._with_data_pkl(hf.deep_tuple_key())))
    (models / "Stable-diffusion" / "gone.safetensors").symlink_to(tmp_path / "nowhere")
    (models / "Lora" / "evil.safetensors").write_bytes(hf.safetensors_bytes(hf._deep_json()))
    (tmp_path / "embeddings" / "deep.pt").write_bytes(hf.write_zip(hf._with_data_pkl(hf.deep_tuple_key())))
    with TestClient(create_app(ServerConfig(models, model="tiny"))) as client:
        listed = [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
        assert "tiny" in listed and "deep" in listed and "gone" not in listed
        assert [l["name"] for l in client.get("/sdapi/v1/loras").json()] == ["evil"]
        skipped = client.get("/sdapi/v1/embeddings").json()["skipped"]
        assert "deeper than" in skipped["deep"]["reason"]
        r = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "deep"})
        assert r.status_code >= 400 and "deeper than" in json.dumps(r.json()), r.text
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x <lora:evil:1>", "steps": 1, "width": 64,
                                                   "height": 64})
        assert r.status_code >= 400 and "nests too deep" in json.dumps(r.json()), r.text
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64})
        assert r.status_code == 200, r.text
