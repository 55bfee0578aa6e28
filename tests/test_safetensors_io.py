"""Header-only safetensors reads agree with the safetensors library and refuse headers that lie."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sd1kit.errors import BadFileError
from sd1kit.formats.safetensors_io import read_header, write_safetensors


def _raw_file(path, header: dict, data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_header_matches_safe_open(tmp_path):
    path = tmp_path / "a.safetensors"
    tensors = {"x": torch.randn(3, 4), "y": torch.zeros(2, dtype=torch.float16), "z": torch.arange(5)}
    save_file(tensors, str(path), metadata={"ss_network_dim": "8"})
    header = read_header(path)
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(header.tensors)
        assert f.metadata() == header.metadata
        for name in f.keys():
            assert list(f.get_slice(name).get_shape()) == list(header.tensors[name].shape)
    assert header.tensors["y"].dtype == "F16" and header.tensors["z"].dtype == "I64"


def test_header_read_does_not_touch_data(tmp_path):
    path = tmp_path / "sparse.safetensors"
    _raw_file(path, {"w": {"dtype": "F32", "shape": [1 << 20], "data_offsets": [0, 4 << 20]}})
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + (4 << 20))
    assert read_header(path).tensors["w"].numel == 1 << 20


@pytest.mark.parametrize("header, data, problem", [
    ({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}, b"\0" * 16, "past the"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, b"\0" * 24, "overlap"),
    ({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "needs 8 bytes"),
    ({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unknown dtype"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "bad shape"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, b"\0" * 8, "bad data_offsets"),
    ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
])
def test_lying_headers_are_refused(tmp_path, header, data, problem):
    path = tmp_path / "liar.safetensors"
    _raw_file(path, header, data)
    with pytest.raises(BadFileError, match=problem) as e:
        read_header(path)
    assert str(path) in str(e.value)


def test_absurd_header_length(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    with pytest.raises(BadFileError, match="header length"):
        read_header(path)


def test_header_not_json(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 6) + b"{nope}")
    with pytest.raises(BadFileError, match="not valid JSON"):
        read_header(path)


def test_write_is_atomic_and_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"previous")
    with pytest.raises(Exception):
        write_safetensors(target, {"x": "not a tensor"})
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]
    write_safetensors(target, {"x": torch.ones(2)}, {"k": "v"})
    assert read_header(target).metadata == {"k": "v"}
