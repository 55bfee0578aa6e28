"""Bad input: one line on stderr naming the file and the problem, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest


def _truncated(tmp_path, tiny_models):
    data = tiny_models["sd15"].read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def _truncated_ckpt(tmp_path, tiny_models):
    data = tiny_models["nai"].read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated or damaged"


def _zero(tmp_path, _):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    return path, "empty file"


def _directory(tmp_path, _):
    path = tmp_path / "folder.safetensors"
    path.mkdir()
    return path, "not a diffusers model"


def _text(tmp_path, _):
    path = tmp_path / "model.safetensors"
    path.write_text("<html><body>404 Not Found</body></html>\n")
    return path, "not a safetensors file"


def _lying(tmp_path, _):
    raw = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    path = tmp_path / "liar.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 10)
    return path, "past the"


def _missing(tmp_path, _):
    return tmp_path / "nope.safetensors", "no such file"


def _unknown_binary(tmp_path, _):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\0" * 100)
    return path, "unknown file format"


BAD = [_truncated, _truncated_ckpt, _zero, _directory, _text, _lying, _missing, _unknown_binary]


@pytest.mark.parametrize("make", BAD, ids=[f.__name__.strip("_") for f in BAD])
def test_bad_input(make, tmp_path, tiny_models, cli):
    path, problem = make(tmp_path, tiny_models)
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv in (("inspect", path), ("inspect", "--json", path),
                 ("convert", path, tmp_path / "out.safetensors")):
        result = cli(*argv)
        assert result.code != 0
        assert result.err.count("\n") == 1 and str(path) in result.err and problem in result.err, result.err
        assert "Traceback" not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_one_bad_file_does_not_hide_the_good_ones(tmp_path, tiny_models, cli):
    bad = tmp_path / "empty.safetensors"
    bad.write_bytes(b"")
    result = cli("inspect", "--json", tiny_models["sd15"], bad)
    assert result.code != 0
    reports = result.json()
    assert reports[0]["kind"] == "checkpoint" and "empty file" in reports[1]["error"]


def test_real_process_prints_no_traceback(tmp_path):
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "sd1kit.cli", "inspect", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"sd1kit: {path}: empty file (0 bytes)"
