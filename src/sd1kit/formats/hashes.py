"""The hashes A1111 and civitai print (formats.md §5), computed in one streaming pass and cached.

- sha256 of the whole file; A1111 short hash = first 10 hex ("Model hash:", civitai AutoV2).
- A1111 legacy "model hash": sha256 of the 64 KiB at offset 1 MiB, first 8 hex (civitai AutoV1).
- addnet (LoRA) hash: for safetensors, sha256 of everything after the 8-byte length and the JSON header;
  short = first 12 hex ("Lora hashes:"). Other LoRA files use the full-file sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from sd1kit.formats.atomic import write_bytes_atomic
from sd1kit.metadata.limits import load_json

CHUNK = 8 << 20
RING = 4
LEGACY_OFFSET, LEGACY_SIZE = 0x100000, 0x10000
CACHE_VERSION = 2  # 2: entries also keyed on ctime and inode


@dataclass(frozen=True)
class FileHashes:
    sha256: str
    a1111_short: str
    a1111_legacy: str
    addnet: str | None = None
    addnet_short: str | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}


def legacy_hash(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        f.seek(LEGACY_OFFSET)
        return hashlib.sha256(f.read(LEGACY_SIZE)).hexdigest()[:8]


def _safetensors_data_start(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return 8 + n if 8 + n <= path.stat().st_size else None


def _stream(path: Path):
    """Yield memoryviews of the file in order. A reader thread fills a small ring of reused buffers, so disk
    reads overlap with hashing (hashlib releases the GIL) and no large buffer is allocated per chunk."""
    free: queue.Queue = queue.Queue()
    full: queue.Queue = queue.Queue()
    for _ in range(RING):
        free.put(bytearray(CHUNK))
    stop = threading.Event()

    def reader() -> None:
        try:
            with open(path, "rb", buffering=0) as f:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while not stop.is_set():
                    buf = free.get()
                    n = f.readinto(buf)
                    full.put((buf, n))
                    if not n:
                        return
        except OSError as e:
            full.put((e, 0))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while True:
            buf, n = full.get()
            if isinstance(buf, OSError):
                raise buf
            if not n:
                return
            yield memoryview(buf)[:n]
            free.put(buf)
    finally:
        stop.set()
        free.put(bytearray(0))  # wake the reader if it waits for a buffer
        thread.join()


def compute_hashes(path: str | os.PathLike, addnet: bool = False) -> FileHashes:
    """Hash a file in one streaming pass; `addnet` adds the LoRA hash (safetensors data section, or whole file)."""
    path = Path(path)
    data_start = _safetensors_data_start(path) if addnet else None
    full, data = hashlib.sha256(), hashlib.sha256() if data_start is not None else None
    offset = 0
    for chunk in _stream(path):
        full.update(chunk)
        if data is not None and offset + len(chunk) > data_start:
            data.update(chunk[max(0, data_start - offset):])
        offset += len(chunk)
    sha = full.hexdigest()
    legacy = legacy_hash(path)
    if not addnet:
        return FileHashes(sha, sha[:10], legacy)
    addnet_hex = data.hexdigest() if data is not None else sha
    return FileHashes(sha, sha[:10], legacy, addnet_hex, addnet_hex[:12])


def cache_path() -> Path:
    base = os.environ.get("SD1KIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sd1kit")
    return Path(base) / "hashes.json"


def read_cache(path: Path, version: int = CACHE_VERSION) -> dict:
    """A JSON cache file of the user cache folder; {} when missing, unreadable or of another version."""
    try:
        data = load_json(path.read_text(), "hash cache")
        return data if isinstance(data, dict) and data.get("version") == version else {}
    except (OSError, ValueError):
        return {}


def write_cache(path: Path, data: dict) -> None:
    """Write a JSON cache file atomically; a read-only cache folder costs speed, not correctness."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, json.dumps(data, indent=1).encode())
    except OSError:
        pass


def file_identity(path: str | os.PathLike) -> tuple:
    """(resolved path, size, mtime) of a file or folder: what caches of loaded models and of hashes key on."""
    path = Path(path)
    st = path.stat() if path.exists() else None
    return str(path.resolve()), st.st_size if st else None, st.st_mtime_ns if st else None


def file_hashes(path: str | os.PathLike, addnet: bool = False, use_cache: bool = True) -> FileHashes:
    """Hashes of a file, served from the user cache when (path, size, mtime, ctime, inode) still match."""
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    store = cache_path()
    cache = read_cache(store) if use_cache else {}
    entry = cache.get("files", {}).get(key)
    # ctime and inode too: a rewrite in place that keeps size and mtime (rsync --inplace -t) still changes ctime
    if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns \
            and entry.get("ctime_ns") == st.st_ctime_ns and entry.get("inode") == st.st_ino \
            and (not addnet or "addnet" in entry["hashes"]):
        return FileHashes(**entry["hashes"])
    hashes = compute_hashes(path, addnet)
    if use_cache:
        cache = read_cache(store) or {"version": CACHE_VERSION, "files": {}}  # re-read: another process may have written
        cache.setdefault("files", {})[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                              "ctime_ns": st.st_ctime_ns, "inode": st.st_ino,
                                              "hashes": hashes.as_dict()}
        write_cache(store, cache)
    return hashes


def hash_matches(path: str | os.PathLike, wanted: str) -> bool:
    """Whether a hash a picture gives (a sha256 prefix: 10 hex, 12, 64; or A1111's old 8-hex model hash) is the
    file's."""
    h, wanted = file_hashes(path), wanted.lower()
    return h.sha256.startswith(wanted) or h.a1111_legacy == wanted
