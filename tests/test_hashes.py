"""Hashes as A1111 and civitai print them, checked against hashlib, and the (path, size, mtime) cache."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import torch

from sd1kit.formats.hashes import cache_path, compute_hashes, file_hashes
from sd1kit.formats.safetensors_io import write_safetensors


def test_full_legacy_and_short(tmp_path):
    path = tmp_path / "blob.bin"
    data = os.urandom(0x100000 + 0x10000 + 12345)
    path.write_bytes(data)
    h = compute_hashes(path)
    assert h.sha256 == hashlib.sha256(data).hexdigest()
    assert h.a1111_short == h.sha256[:10]
    assert h.a1111_legacy == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_legacy_hash_of_a_small_file_hashes_what_is_there(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(b"x" * 100)
    assert compute_hashes(path).a1111_legacy == hashlib.sha256(b"").hexdigest()[:8]


def test_addnet_hash_skips_header_and_metadata(tmp_path):
    """Same tensors, different metadata: same addnet hash (A1111 addnet_hash_safetensors)."""
    tensors = {"lora_unet_x.lora_down.weight": torch.randn(4, 8), "lora_unet_x.lora_up.weight": torch.randn(8, 4)}
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    write_safetensors(a, tensors, {"ss_network_dim": "4"})
    write_safetensors(b, tensors, {"ss_network_dim": "4", "ss_output_name": "renamed"})
    ha, hb = compute_hashes(a, addnet=True), compute_hashes(b, addnet=True)
    assert ha.sha256 != hb.sha256 and ha.addnet == hb.addnet
    data = a.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert ha.addnet == hashlib.sha256(data[8 + n:]).hexdigest() and ha.addnet_short == ha.addnet[:12]


def test_lora_inspect_reports_addnet(tmp_path, cli):
    path = tmp_path / "style.safetensors"
    write_safetensors(path, {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.randn(4, 32, 1, 1),
                             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.randn(32, 4, 1, 1)})
    r = cli("inspect", "--json", path).json()[0]
    assert r["kind"] == "lora" and len(r["hashes"]["addnet_short"]) == 12 and "addnet" in r["hashes"]


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    path = tmp_path / "m.bin"
    path.write_bytes(b"a" * 1000)
    first = file_hashes(path)
    cache = json.loads(cache_path().read_text())
    assert cache["files"][str(path.resolve())]["hashes"]["sha256"] == first.sha256
    calls = []
    import sd1kit.formats.hashes as hashes_module

    real = hashes_module.compute_hashes
    monkeypatch.setattr(hashes_module, "compute_hashes", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert file_hashes(path) == first and calls == []  # served from the cache
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(1, 1))  # a different mtime
    assert file_hashes(path).sha256 == hashlib.sha256(b"b" * 1000).hexdigest() and len(calls) == 1


def test_unwritable_cache_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SD1KIT_CACHE_DIR", str(blocker / "sub"))
    path = tmp_path / "m.bin"
    path.write_bytes(b"z")
    assert file_hashes(path).sha256 == hashlib.sha256(b"z").hexdigest()
