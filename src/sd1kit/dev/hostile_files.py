"""Hostile model files: torch containers that show a scanner another pickle than torch loads, pickles that crash,
hang or exhaust a loader, and safetensors headers that do. Cases for sd1kit.dev.hostile.

Every payload here is real: `payload(marker)` is a pickle that, under `pickle.loads`, runs `os.system` to create
`marker`; the tests check that no command ever creates it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

from sd1kit.dev.hostile import BAKE_ADAPTER, GENERATE, MODEL_COMMANDS, HostileCase

PROTO2, STOP = b"\x80\x02", b"."
EMPTY_DICT, EMPTY_TUPLE, EMPTY_LIST = b"}", b")", b"]"
TUPLE1, TUPLE2, DUP, SETITEM, APPEND, MARK = b"\x85", b"\x86", b"2", b"s", b"a", b"("
BININT1 = b"K"
MAGIC = 0x1950A86A20F9469CFC6C


def payload(marker: Path) -> bytes:
    """A pickle that runs `touch MARKER` through os.system (posix.system) when unpickled."""

    class Reduce:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    return pickle.dumps(Reduce(), protocol=2)


def _legit_objects():
    import torch

    return {"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}}


def torch_zip_members(obj=None) -> list[tuple[str, bytes]]:
    """The members (name, bytes) of a real torch.save archive, in order."""
    import torch
    import zipfile

    buf = io.BytesIO()
    torch.save(_legit_objects() if obj is None else obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def write_zip(members: list[tuple], path: Path | None = None) -> bytes:
    """A plain zip of (name, data[, options]) members; options: method (0/8), flags, declared_size (a lie)."""
    out, central = io.BytesIO(), []
    for member in members:
        name, data, opts = member[0], member[1], (member[2] if len(member) > 2 else {})
        method, flags = opts.get("method", 0), opts.get("flags", 0x800)
        body = _deflate(data) if method == 8 else data
        size = opts.get("declared_size", len(data))
        crc, raw_name, offset = zlib.crc32(data), name.encode(), out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0, crc, len(body), size,
                              len(raw_name), 0) + raw_name + body)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, method, 0, 0, crc,
                                   len(body), size, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
    start = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central), out.tell() - start,
                          start, 0))
    data = out.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _with_data_pkl(pkl: bytes, extra: list[tuple] = ()) -> list[tuple]:
    members = [(n, d) for n, d in torch_zip_members() if not n.endswith("/data.pkl")]
    prefix = members[0][0].split("/", 1)[0]
    return [(f"{prefix}/data.pkl", pkl), *members, *extra]


def legacy_bytes(obj_pickle: bytes) -> bytes:
    """torch's legacy layout around one object pickle: magic, protocol, sys_info, OBJECT, storage keys."""
    head = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, protocol=2)
    return head + obj_pickle + pickle.dumps([], protocol=2)


def deep_tuple_key(depth: int = 10 ** 6) -> bytes:
    """{((...(())...)): 1}, `depth` tuples deep: no globals at all; hashing it overflows the C stack."""
    return PROTO2 + EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * depth + BININT1 + b"\x01" + SETITEM + STOP


def deep_list_value(depth: int = 10 ** 6) -> bytes:
    """{1: [[[...]]]}, `depth` lists deep, as a value."""
    return PROTO2 + EMPTY_DICT + BININT1 + b"\x01" + EMPTY_LIST * (depth + 1) + APPEND * depth + SETITEM + STOP


def _doubling_tuples(doublings: int) -> bytes:
    """Onto an open list: t0 = (), t(n+1) = (t(n), t(n)) through the memo (BINGET twice, TUPLE2, BINPUT), each
    appended; only opcodes torch's weights-only unpickler supports, so torch itself would build the graph."""
    body = EMPTY_TUPLE + b"q\x00" + APPEND
    for i in range(doublings):
        body += b"h" + bytes([i]) + b"h" + bytes([i]) + TUPLE2 + b"q" + bytes([i + 1]) + APPEND
    return body


def exponential_key(doublings: int = 80) -> bytes:
    """[[t0 .. t80], {t80: 1}]: about 400 bytes; hashing the key t80 is 2^80 work (a hang under torch.load)."""
    return (PROTO2 + EMPTY_LIST + EMPTY_LIST + _doubling_tuples(doublings) + APPEND + EMPTY_DICT
            + b"h" + bytes([doublings]) + BININT1 + b"\x01" + SETITEM + APPEND + STOP)


def memo_laughs(doublings: int = 80) -> bytes:
    """[t0 .. t80] as a value: torch loads it at once, and anything that then walks it (repr, copy, a flatten)
    does 2^80 work."""
    return PROTO2 + EMPTY_LIST + _doubling_tuples(doublings) + STOP


def filled_after_nesting(depth: int = 240_000) -> bytes:
    """{"x": [[[...]]]} built by appending an empty list, then filling it: every container is nested before it is
    filled, so a walk that only grows the container itself sees depth 1."""
    chain = b"]q\x00ah\x00" * depth
    return PROTO2 + b"}q\x01X\x01\x00\x00\x00x]q\x00sh\x00" + chain + b"h\x01" + STOP


def comment_hidden_archive() -> bytes:
    """A real torch archive whose end-record comment hides a second archive (members, directory and an end
    record) holding another data.pkl, plus one byte: readers take the last end record, a lax scanner the first."""
    benign = write_zip(torch_zip_members())
    start, blob, central = len(benign), b"", b""
    prefix = torch_zip_members()[0][0].split("/", 1)[0]
    hidden_members = ((f"{prefix}/data.pkl", pickle.dumps({"hidden": 1}, protocol=2)), (f"{prefix}/version", b"3\n"),
                      (f"{prefix}/byteorder", b"little"))
    for name, data in hidden_members:
        offset = start + len(blob)
        entry = write_zip([(name, data)])
        local_end = entry.index(b"PK\x01\x02")
        blob += entry[:local_end]
        central += entry[local_end:entry.index(b"PK\x05\x06")][:42] + struct.pack("<I", offset) + name.encode()
    count = len(hidden_members)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), start + len(blob), 0)
    hidden = blob + central + end + b"\0"
    return benign[:-2] + struct.pack("<H", len(hidden)) + hidden


def many_opcodes(n: int = 2_500_000) -> bytes:
    return PROTO2 + EMPTY_DICT + BININT1 + b"\x01" + EMPTY_LIST + (BININT1 + b"\x01" + APPEND) * n + SETITEM + STOP


INT_PERSISTENT_ID = PROTO2 + BININT1 + b"\x05" + b"Q" + STOP
TRUNCATED_TUPLE = PROTO2 + BININT1 + b"\x01" + TUPLE2 + STOP
BUILD_ON_SIZE = PROTO2 + b"ctorch\nSize\n" + EMPTY_TUPLE + b"R" + EMPTY_DICT + b"b" + STOP


def _tar_checkpoint(evil: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("sys_info", pickle.dumps({}, protocol=2)), ("pickle", evil),
                           ("storages", pickle.dumps(0, protocol=2)), ("tensors", pickle.dumps(0, protocol=2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _flag_encrypted(members: list[tuple]) -> list[tuple]:
    return [(n, d, {"flags": 0x801}) if n.endswith("data.pkl") else (n, d) for n, d in members]


def safetensors_bytes(header: bytes | dict, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _deep_json(depth: int = 10 ** 5) -> bytes:
    return b'{"__metadata__": {}, "x": ' + b"[" * depth + b"]" * depth + b"}"


def _empty_tensors(n: int) -> bytes:
    entries = ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(n))
    return ("{" + entries + "}").encode()


def _at(folder: Path, name: str, data: bytes) -> Path:
    path = folder / "models" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _case(name: str, filename: str, make, expect: str, note: str = "") -> HostileCase:
    """A model-file case: built in {dir}/models (so `models scan` meets it), put through every model command and
    given to `lora bake` as an adapter too."""
    return HostileCase(name, "model", lambda folder: _at(folder, filename, make(folder)),
                       MODEL_COMMANDS + (BAKE_ADAPTER,), expect=expect, needs_model=True, note=note)


def _marker(folder: Path) -> Path:
    return folder / "pwned"


CASES: list[HostileCase] = [
    # the five container tricks, each hiding a payload that runs under pickle.loads
    _case("zip-duplicate-name", "dup.ckpt",
          lambda d: write_zip([(torch_zip_members()[0][0], payload(_marker(d))), *torch_zip_members()]),
          "collide", "two entries named data.pkl: torch reads the first, Python's zipfile the last"),
    _case("zip-uppercase-pickle", "upper.ckpt",
          lambda d: write_zip([*torch_zip_members(), (torch_zip_members()[0][0].replace("data.pkl", "DATA.PKL"),
                                                      payload(_marker(d)))]),
          "collide", "archive/DATA.PKL beside data.pkl: torch's lookup ignores case"),
    _case("zip-uppercase-only", "upper-only.ckpt",
          lambda d: write_zip([(torch_zip_members()[0][0].replace("data.pkl", "DATA.PKL"), payload(_marker(d))),
                               *torch_zip_members()[1:]]),
          "unsafe pickle", "the only data pickle is upper-case: scanned like any *.pkl member"),
    _case("zip-concatenated", "concat.ckpt",
          lambda d: write_zip(_with_data_pkl(payload(_marker(d)))) + write_zip(torch_zip_members()),
          "ambiguous", "two archives back to back: readers choose different central directories"),
    _case("legacy-with-zip-appended", "legacy-zip.ckpt",
          lambda d: legacy_bytes(payload(_marker(d))) + write_zip(torch_zip_members()),
          "unsafe pickle", "torch decides legacy by the first bytes; the scanner reads the legacy streams"),
    _case("tar-checkpoint", "old.ckpt", lambda d: _tar_checkpoint(payload(_marker(d))),
          "tar-format", "first member named like the legacy streams"),
    # pickles without any global that crash, hang or exhaust a loader
    _case("deep-tuple-key-zip", "deep.ckpt", lambda d: write_zip(_with_data_pkl(deep_tuple_key())),
          "deeper than", "10^6-deep tuple key: SIGSEGV in the C hash"),
    _case("deep-tuple-key-legacy", "deep-legacy.ckpt", lambda d: legacy_bytes(deep_tuple_key()), "deeper than"),
    _case("deep-list-value", "deep-list.pt", lambda d: write_zip(_with_data_pkl(deep_list_value(400_000))),
          "deeper than"),
    _case("exponential-hash-key", "exp.ckpt", lambda d: write_zip(_with_data_pkl(exponential_key())),
          "object graph", "2^80 work to hash, in opcodes torch's weights-only unpickler runs"),
    _case("memo-laughs", "laughs.ckpt", lambda d: write_zip(_with_data_pkl(memo_laughs())), "object graph"),
    _case("filled-after-nesting", "mutate.ckpt", lambda d: write_zip(_with_data_pkl(filled_after_nesting())),
          "deeper than", "lists appended empty and filled afterwards: 240,000 deep"),
    _case("zip-comment-hides-archive", "comment.ckpt", lambda d: comment_hidden_archive(), "ambiguous",
          "a second end record inside the first one's comment"),
    _case("many-opcodes", "ops.ckpt", lambda d: write_zip(_with_data_pkl(many_opcodes(1_200_000))), "opcodes"),
    _case("int-persistent-id", "persid.ckpt", lambda d: write_zip(_with_data_pkl(INT_PERSISTENT_ID)),
          "unreadable torch file"),
    _case("truncated-tuple", "trunc.ckpt", lambda d: write_zip(_with_data_pkl(TRUNCATED_TUPLE)), "corrupt pickle"),
    _case("build-on-torch-size", "size.ckpt", lambda d: write_zip(_with_data_pkl(BUILD_ON_SIZE)),
          "unreadable torch file|not a dict of tensors"),
    _case("encrypted-member", "enc.ckpt", lambda d: write_zip(_flag_encrypted(torch_zip_members())), "encrypted"),
    _case("zip-member-bomb", "bomb.ckpt",
          lambda d: write_zip([(torch_zip_members()[0][0], b"\0" * (1 << 20),
                                {"method": 8, "declared_size": 1500 << 20}), *torch_zip_members()[1:]]),
          "inflate", "data.pkl says it inflates 1 MB to 1.5 GB"),
    _case("zip-pickle-bomb-honest", "bomb2.ckpt",
          lambda d: write_zip([(torch_zip_members()[0][0], b"\0" * (80 << 20), {"method": 8}),
                               *torch_zip_members()[1:]]),
          "more than a checkpoint's pickle", "data.pkl truly inflates to 80 MiB"),
    _case("zip-member-lying-size", "lie.ckpt",
          lambda d: write_zip([(torch_zip_members()[0][0], b"\0" * (8 << 20), {"method": 8, "declared_size": 4096}),
                               *torch_zip_members()[1:]]),
          "declared size", "data.pkl inflates past the size it declares"),
    _case("garbage", "garbage.ckpt", lambda d: os.urandom(4096), "corrupt pickle"),
    _case("empty", "empty.safetensors", lambda d: b"", "empty file"),
    # safetensors headers
    _case("st-deep-header", "deep.safetensors", lambda d: safetensors_bytes(_deep_json()), "nest"),
    _case("st-list-dtype", "dtype.safetensors",
          lambda d: safetensors_bytes({"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
          "dtype"),
    _case("st-5000-digit-int", "digits.safetensors",
          lambda d: safetensors_bytes(b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}'),
          "unreadable number"),
    _case("st-huge-shape", "shape.safetensors",
          lambda d: safetensors_bytes({"w": {"dtype": "F32", "shape": [2 ** 62, 2 ** 62], "data_offsets": [0, 4]}},
                                      b"\0" * 4), "needs"),
    _case("st-million-empty-tensors", "million.safetensors", lambda d: safetensors_bytes(_empty_tensors(1_250_000)),
          "header", "a 97 MiB header of 1.25 M empty tensors"),
    _case("st-many-empty-tensors", "many.safetensors", lambda d: safetensors_bytes(_empty_tensors(150_000)),
          "tensors", "150,000 empty tensors in a header under the size cap"),
    _case("st-header-length-lie", "lie.safetensors", lambda d: struct.pack("<Q", 2 ** 63) + b"{}", "header length"),
    _case("st-no-sd1-tensors", "random.safetensors",
          lambda d: safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
          "not a recognised SD1|no SD1 model weights|none of its .* modules fit|no LoRA", "a valid file holding no SD1 weights"),
]

# A bad file in the embeddings folder is one warning line; generation goes on (exit 0). A real generation, so
# its time is the generation's, not the refusal's.
EMBEDDING_CASES: list[HostileCase] = [
    HostileCase("embedding-deep-tuple", "embedding",
                lambda d: _embedding(d, "deep.pt", write_zip(_with_data_pkl(deep_tuple_key()))),
                (GENERATE[:2] + ("{model}",) + GENERATE[3:] + ("--embeddings", "{dir}/embeddings"),),
                expect="deeper than", exit_code=0, needs_model=True, note="every generate died with SIGSEGV"),
]


def _embedding(folder: Path, name: str, data: bytes) -> Path:
    path = folder / "embeddings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
