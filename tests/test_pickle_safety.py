"""Malicious pickles are refused without executing anything; real NAI/WD-style checkpoints still load.

Each payload, if it ever ran, would create a marker file; every test proves that it did not.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from sd1kit.errors import UnsafePickleError
from sd1kit.formats.ckpt import load_torch_file, scan_pickle_file
from sd1kit.formats.source import open_source


class Reduce:
    """Pickles as `func(*args)`: pickling is inert, unpickling would call func."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_cmd(marker: Path) -> str:
    return f"touch '{marker}'"


def _open_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _proto0(*lines: str) -> bytes:
    return "\n".join(lines).encode()


def payload_os_system(m):
    return pickle.dumps(Reduce(os.system, _touch_cmd(m)), protocol=3)


def payload_eval(m):
    return pickle.dumps(Reduce(eval, _open_code(m)), protocol=3)


def payload_exec(m):
    return pickle.dumps(Reduce(exec, _open_code(m)), protocol=3)


def payload_subprocess(m):
    return pickle.dumps(Reduce(subprocess.call, ["touch", str(m)]), protocol=3)


def payload_getattr_chain(m):
    # getattr(__import__('os'), 'system')('touch marker'), written with raw opcodes
    return (b"\x80\x02cbuiltins\ngetattr\n(cbuiltins\n__import__\n(X\x02\x00\x00\x00ostRX\x06\x00\x00\x00systemtR("
            + b"X" + len(_touch_cmd(m).encode()).to_bytes(4, "little") + _touch_cmd(m).encode() + b"tR.")


def payload_stack_global(m):
    return pickle.dumps(Reduce(os.system, _touch_cmd(m)), protocol=4)


def payload_stack_global_memo(m):
    # the module and name strings are memoised first and fetched back with BINGET before STACK_GLOBAL
    cmd = _touch_cmd(m).encode()
    return (b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94h\x00h\x01\x93\x8c" + bytes([len(cmd)]) + cmd
            + b"\x85R.")


def payload_inst(m):
    return _proto0("(S" + repr(_touch_cmd(m)), "ios", "system", ".")


def payload_obj(m):
    return b"(cos\nsystem\nS" + repr(_touch_cmd(m)).encode() + b"\no."


def payload_python2_open(m):
    return _proto0("c__builtin__", "open", "(S" + repr(str(m)), "S'w'", "tR.")


def payload_nested_pickle_loads(m):
    inner = payload_os_system(m)
    return pickle.dumps(Reduce(pickle.loads, inner), protocol=3)


def payload_copyreg_extension(m):
    return b"\x80\x02\x82\xf1(X" + len(_touch_cmd(m)).to_bytes(4, "little") + _touch_cmd(m).encode() + b"tR."


def payload_runpy(m):
    import runpy

    return pickle.dumps(Reduce(runpy._run_code, _open_code(m), {}), protocol=3)


def payload_importlib(m):
    import importlib

    return pickle.dumps(Reduce(importlib.import_module, "antigravity"), protocol=3)


RAW_PAYLOADS = {
    "os.system": (payload_os_system, "posix.system"),
    "eval": (payload_eval, "builtins.eval"),
    "exec": (payload_exec, "builtins.exec"),
    "subprocess": (payload_subprocess, "subprocess.call"),
    "getattr-chain": (payload_getattr_chain, "builtins.getattr"),
    "stack-global": (payload_stack_global, "posix.system"),
    "stack-global-memo": (payload_stack_global_memo, "posix.system"),
    "inst-opcode": (payload_inst, "os.system"),
    "obj-opcode": (payload_obj, "os.system"),
    "python2-open": (payload_python2_open, "__builtin__.open"),
    "nested-pickle-loads": (payload_nested_pickle_loads, "_pickle.loads"),
    "copyreg-extension": (payload_copyreg_extension, "<copyreg extension 241>"),
    "runpy": (payload_runpy, "runpy._run_code"),
    "importlib": (payload_importlib, "importlib.import_module"),
}
if sys.platform != "linux":  # os.system pickles as nt.system elsewhere
    RAW_PAYLOADS["os.system"] = (payload_os_system, f"{os.system.__module__}.system")


def _legit_state_dict():
    return {"model.diffusion_model.input_blocks.0.0.weight": torch.randn(4, 4, 3, 3)}


def ckpt_with_payload_in_data_pkl(m, path):
    torch.save({"state_dict": _legit_state_dict(), "evil": Reduce(os.system, _touch_cmd(m))}, path)


def ckpt_with_nested_pickle_entry(m, path):
    torch.save({"state_dict": _legit_state_dict()}, path)
    with zipfile.ZipFile(path, "a") as z:
        prefix = z.namelist()[0].split("/")[0]
        z.writestr(f"{prefix}/data/evil.pkl", payload_os_system(m))


def legacy_with_payload(m, path):
    torch.save({"state_dict": _legit_state_dict(), "evil": Reduce(os.system, _touch_cmd(m))}, path,
               _use_new_zipfile_serialization=False)


def legacy_with_payload_in_sys_info(m, path):
    buf = io.BytesIO()
    torch.save({"state_dict": _legit_state_dict()}, buf, _use_new_zipfile_serialization=False)
    stream = io.BytesIO(buf.getvalue())
    for _ in range(3):  # magic number, protocol version, sys_info
        for op, _arg, _pos in pickletools.genops(stream):
            if op.name == "STOP":
                break
    cut = stream.tell()
    head = io.BytesIO(buf.getvalue()[:cut])
    for _ in range(2):
        for op, _arg, _pos in pickletools.genops(head):
            if op.name == "STOP":
                break
    path.write_bytes(buf.getvalue()[:head.tell()] + payload_os_system(m) + buf.getvalue()[cut:])


CONTAINER_PAYLOADS = {
    "zip-data-pkl": ckpt_with_payload_in_data_pkl,
    "zip-nested-pickle": ckpt_with_nested_pickle_entry,
    "legacy-main-pickle": legacy_with_payload,
    "legacy-sys-info": legacy_with_payload_in_sys_info,
}


def _assert_refused_everywhere(path: Path, marker: Path, expected: str, cli):
    scan = scan_pickle_file(path)
    assert not scan.safe and expected in scan.unsafe_globals
    with pytest.raises(UnsafePickleError) as e:
        load_torch_file(path)
    assert expected in e.value.unsafe_globals
    source = open_source(path)
    assert not source.safe and source.tensors == {}
    result = cli("inspect", "--json", path)
    assert result.code != 0
    report = result.json()[0]
    assert report["safe"] is False and expected in report["unsafe_globals"] and report["kind"] == "unknown"
    assert str(path) in result.err and "Traceback" not in result.err
    out = path.with_name("converted.safetensors")
    result = cli("convert", path, out)
    assert result.code != 0 and "unsafe pickle" in result.err and not out.exists()
    assert not marker.exists(), "the payload ran"


@pytest.mark.parametrize("kind", list(RAW_PAYLOADS))
def test_raw_payload_never_runs(kind, tmp_path, cli):
    make, expected = RAW_PAYLOADS[kind]
    marker = tmp_path / "pwned"
    path = tmp_path / "model.ckpt"
    path.write_bytes(make(marker))
    _assert_refused_everywhere(path, marker, expected, cli)


@pytest.mark.parametrize("kind", list(CONTAINER_PAYLOADS))
def test_payload_in_torch_container_never_runs(kind, tmp_path, cli):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.ckpt"
    CONTAINER_PAYLOADS[kind](marker, path)
    _assert_refused_everywhere(path, marker, "posix.system" if sys.platform == "linux" else "nt.system", cli)


def test_payloads_are_real(tmp_path):
    """Sanity check of the suite itself: an unsafe loader does run the payload."""
    marker = tmp_path / "pwned"
    pickle.loads(payload_os_system(marker))
    assert marker.exists()


@pytest.mark.parametrize("layout", ["nai", "wd"])
def test_legitimate_checkpoints_load(layout, tiny_models):
    scan = scan_pickle_file(tiny_models[layout])
    assert scan.safe, scan.unsafe_globals
    source = open_source(tiny_models[layout])
    assert source.safe and len(source.tensors) > 900
    sd = source.load_state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())


def test_wd_training_state_with_lightning_callbacks_loads(tiny_models):
    scan = scan_pickle_file(tiny_models["wd"])
    assert "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint" in scan.globals
    assert "numpy.core.multiarray.scalar" in scan.globals or "numpy._core.multiarray.scalar" in scan.globals
    obj = load_torch_file(tiny_models["wd"])
    assert int(obj["global_step"]) == 123 and obj["epoch"] == 2


def test_legacy_format_loads(tmp_path):
    path = tmp_path / "old.ckpt"
    sd = _legit_state_dict()
    torch.save({"state_dict": sd, "global_step": 7}, path, _use_new_zipfile_serialization=False)
    source = open_source(path)
    assert source.container == "pickle" and source.safe
    key = "model.diffusion_model.input_blocks.0.0.weight"
    assert torch.equal(source.load_state_dict()[key], sd[key])
