"""Fuzzing the readers of model files (issue 20): the pickle scanner and torch loader, safetensors headers, and
the JSON texts model files carry (merge / bake records, kohya tag frequencies, the hash cache). Whatever the
bytes, only an Sd1kitError may come out, each input within 2 s (hypothesis' deadline) and bounded memory.

Example counts (CI): pickle streams 300, mutated torch archives 200, safetensors headers 300, metadata JSON 100.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import resource
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sd1kit.dev import hostile_files as hf
from sd1kit.errors import Sd1kitError
from sd1kit.formats.ckpt import load_torch_file, scan_pickle_file
from sd1kit.formats.pickle_scan import scan_stream
from sd1kit.formats.safetensors_io import read_header

def fuzz(examples: int):
    return settings(max_examples=examples, deadline=2000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]
LEGIT = pickle.dumps({"state_dict": {"a.weight": (1, 2.0, "x", [b"y"]), "b": {"c": None}}}, protocol=2)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    """All the examples of this module together may not raise the process's peak RSS by 500 MB."""
    before = _peak_mb()
    yield
    assert _peak_mb() - before < 500


def _chunks():
    """Pickle-ish bytes: opcodes with random arguments, pieces of a real pickle, repeats of either."""
    piece = st.one_of(st.sampled_from(OPCODES), st.binary(max_size=8),
                      st.integers(0, len(LEGIT) - 1).map(lambda i: LEGIT[i:i + 12]))
    return st.lists(st.tuples(piece, st.integers(1, 50)), max_size=40).map(lambda ps: b"".join(p * n for p, n in ps))


@fuzz(300)
@given(_chunks())
def test_pickle_scanner_only_refuses(data):
    try:
        scan_stream(io.BytesIO(b"\x80\x02" + data + b"."), "fuzz.pkl", [])
    except Sd1kitError:
        pass


@fuzz(300)
@given(st.binary(max_size=400))
def test_pickle_scanner_on_raw_bytes(data):
    try:
        scan_stream(io.BytesIO(data), "fuzz.pkl", [])
    except Sd1kitError:
        pass


ARCHIVE = hf.write_zip(hf.torch_zip_members({"w": torch.arange(4.0), "n": {"b": torch.ones(2)}}))


@fuzz(200)
@given(st.lists(st.tuples(st.integers(0, len(ARCHIVE) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(ARCHIVE)))
def test_mutated_torch_archives_are_refused_or_loaded(tmp_path_factory, flips, cut):
    """Bytes flipped and the file cut anywhere: the scan refuses it, or it loads to exactly what was saved."""
    data = bytearray(ARCHIVE)
    for at, value in flips:
        data[at] = value
    path = tmp_path_factory.mktemp("fuzz") / "m.ckpt"
    path.write_bytes(bytes(data[:max(cut, 1)]))
    try:
        scan = scan_pickle_file(path)
        if scan.safe:
            loaded = load_torch_file(path, scan)
            assert isinstance(loaded, dict)
    except Sd1kitError:
        pass


def _json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
                        st.text(max_size=12), st.sampled_from(["F32", "F16", "BF16", "I64", "__metadata__"]))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=30)


def _tensor_entries():
    entry = st.fixed_dictionaries({"dtype": st.one_of(st.sampled_from(["F32", "F16", "I8", "BOOL"]), _json_values()),
                                   "shape": st.one_of(st.lists(st.integers(-1, 9), max_size=4), _json_values()),
                                   "data_offsets": st.one_of(st.lists(st.integers(-1, 64), min_size=2, max_size=2),
                                                             _json_values())})
    return st.dictionaries(st.text(min_size=1, max_size=10), st.one_of(entry, _json_values()), max_size=6)


@fuzz(300)
@given(_tensor_entries(), st.one_of(st.none(), _json_values()), st.binary(max_size=256), st.integers(-3, 3))
def test_safetensors_headers_only_refuse(tmp_path_factory, tensors, metadata, data, length_lie):
    header = dict(tensors)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    path.write_bytes(struct.pack("<Q", max(0, len(raw) + length_lie)) + raw + data)
    try:
        read_header(path)
    except Sd1kitError:
        pass


@pytest.fixture(scope="module")
def lora_tensors():
    """A tiny model's LoRA, built once (and the inspect path warmed up) outside the examples' deadline."""
    from sd1kit.dev.adapters import synthetic_adapter
    from sd1kit.dev.tiny import tiny_state_dict
    from sd1kit.report import inspect_path  # noqa: F401

    return synthetic_adapter({k: tuple(v.shape) for k, v in tiny_state_dict().items()}, rank=2)


@fuzz(100)
@given(st.sampled_from(["sd1kit_recipe", "sd1kit_baked", "ss_tag_frequency", "ss_output_name"]),
       st.one_of(_json_values().map(json.dumps), st.text(max_size=40),
                 st.integers(1000, 20000).map(lambda n: "[" * n + "]" * n)))
def test_metadata_json_of_model_files_only_refuses(tmp_path_factory, lora_tensors, key, text):
    """inspect reads the JSON records sd1kit writes (merge recipes, bakes) and kohya's tag frequencies: any text
    in them is shown as unreadable, never a crash."""
    from sd1kit.formats.safetensors_io import write_safetensors
    from sd1kit.report import format_human, inspect_path

    folder = tmp_path_factory.mktemp("fuzz")
    model, lora = folder / "m.safetensors", folder / "l.safetensors"
    write_safetensors(model, {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, {key: text})
    write_safetensors(lora, lora_tensors, {"ss_network_module": "networks.lora", key: text})
    for path in (model, lora):
        try:
            format_human(inspect_path(path, use_cache=False))
        except Sd1kitError:
            pass


def test_hash_cache_of_any_content_is_ignored(tmp_path):
    from sd1kit.formats.hashes import read_cache

    for text in ("[" * 100_000 + "]" * 100_000, "{", '{"version": 1, "files": 5}', "\x00\xff"):
        (tmp_path / "c.json").write_text(text, encoding="utf-8", errors="surrogateescape")
        assert read_cache(tmp_path / "c.json") == {} or isinstance(read_cache(tmp_path / "c.json"), dict)
