"""Hostile model files through every command that opens one (issue 20): each ends in seconds and bounded memory,
with exit 2 and one line naming the file and the reason (`models scan` lists it as unreadable and goes on), and
no payload ever runs. The cases are in sd1kit.dev.hostile_files; bench/hostile.py prints the same runs as a table.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile

import pytest
import torch

from sd1kit.dev import hostile_files as hf
from sd1kit.dev.hostile import SCAN, expand, prepare, run_command
from sd1kit.errors import BadFileError
from sd1kit.formats.ckpt import load_torch_file, scan_pickle_file

MAX_SECONDS, MAX_MB = 5.0, 500
CASES = {c.name: c for c in hf.CASES + hf.EMBEDDING_CASES}
RUNS = [(name, i) for name, c in CASES.items() for i in range(len(c.commands))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            folder = tmp_path_factory.mktemp(name)
            cache[name] = (folder, prepare(CASES[name], folder))
        return cache[name]

    return get


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


def _save(obj, path, **kw):
    torch.save(obj, path, **kw)
    return path


def test_real_torch_archives_still_load(tmp_path):
    """torch.save's zip (data descriptors, zip64 end records), the legacy stream, and a zip repacked by another
    tool with deflated members all load; the view is the same as torch's."""
    sd = {"w": torch.arange(6.0).reshape(2, 3), "nested": {"b": torch.ones(2)}}
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
