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

CHUNK = 8 << 20
LEGACY_OFFSET, LEGACY_SIZE = 0x100000, 0x10000
CACHE_VERSION = 1


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


def _read_chunks(path: Path, out: queue.Queue) -> None:
    """Reader thread: disk reads overlap with hashing (hashlib releases the GIL on large buffers)."""
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                out.put(chunk)
        out.put(None)
    except OSError as e:
        out.put(e)


def compute_hashes(path: str | os.PathLike, addnet: bool = False) -> FileHashes:
    """Hash a file in one streaming pass; `addnet` adds the LoRA hash (safetensors data section, or whole file)."""
    path = Path(path)
    data_start = _safetensors_data_start(path) if addnet else None
    full, data = hashlib.sha256(), hashlib.sha256() if data_start is not None else None
    chunks: queue.Queue = queue.Queue(maxsize=4)
    threading.Thread(target=_read_chunks, args=(path, chunks), daemon=True).start()
    offset = 0
    while (chunk := chunks.get()) is not None:
        if isinstance(chunk, OSError):
            raise chunk
        full.update(chunk)
        if data is not None and offset + len(chunk) > data_start:
            data.update(memoryview(chunk)[max(0, data_start - offset):])
        offset += len(chunk)
    sha = full.hexdigest()
    result = FileHashes(sha, sha[:10], legacy_hash(path))
    if addnet:
        addnet_hex = data.hexdigest() if data is not None else sha
        result = FileHashes(sha, sha[:10], result.a1111_legacy, addnet_hex, addnet_hex[:12])
    return result


def cache_path() -> Path:
    base = os.environ.get("SD1KIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sd1kit")
    return Path(base) / "hashes.json"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}
    except (OSError, ValueError):
        return {}


def file_hashes(path: str | os.PathLike, addnet: bool = False, use_cache: bool = True) -> FileHashes:
    """Hashes of a file, served from the user cache when (path, size, mtime) still match."""
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    store = cache_path()
    cache = _load_cache(store) if use_cache else {}
    entry = cache.get("files", {}).get(key)
    if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns \
            and (not addnet or "addnet" in entry["hashes"]):
        return FileHashes(**entry["hashes"])
    hashes = compute_hashes(path, addnet)
    if use_cache:
        cache = _load_cache(store) or {"version": CACHE_VERSION, "files": {}}  # re-read: another process may have written
        cache.setdefault("files", {})[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hashes": hashes.as_dict()}
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(store, json.dumps(cache, indent=1).encode())
        except OSError:
            pass  # a read-only cache folder costs speed, not correctness
    return hashes
