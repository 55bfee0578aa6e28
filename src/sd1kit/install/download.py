"""Streaming, resumable, verified downloads with httpx.

A file is written to `.NAME.sd1kit-download` beside where it goes (a name A1111 and `sd1kit models scan` do not
list), with `.NAME.sd1kit-download.json` saying what it is a part of. An interrupted download keeps that file and
the next run asks for the rest with a Range request (If-Range on the ETag when the server gave one); a server that
ignores the Range sends the whole file again and the part is rewritten. Only when the whole file's sha256 matches
the expected one (the catalog's, Civitai's or Hugging Face's, or `--sha256`; printed when none is known) is it
renamed to its name; a mismatch removes the part and names both hashes. A file already in place with the expected
hash is not fetched again (its hash comes from the hash cache when it was hashed before).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

import httpx

from sd1kit.errors import Sd1kitError, os_error
from sd1kit.formats.atomic import _UMASK
from sd1kit.formats.hashes import CACHE_VERSION, cache_path, file_hashes, legacy_hash, read_cache, write_cache

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, the part file still works
    fcntl = None

PART_SUFFIX = ".sd1kit-download"
CHUNK = 1 << 20
USER_AGENT = "sd1kit httpx"
RETRY_BACKOFF = 1.0  # seconds times the attempt number between retries of a cut download


@dataclass
class Remote:
    """One file to fetch: where from, under which name, and what it must hash to."""

    url: str
    name: str | None = None  # None: the response's Content-Disposition, else the last part of the final URL
    sha256: str | None = None
    sha256_from: str | None = None  # who says so: "catalog", "civitai", "Hugging Face", "--sha256"
    size: int | None = None
    headers: dict = field(default_factory=dict)  # sent to the first host only (httpx drops Authorization on redirects off it)
    token_var: str | None = None  # the variable to name on 401/403
    kind: str | None = None  # what the source says the file is (checkpoint, lycoris, ...)
    label: str | None = None  # the source as the user gave it


@dataclass
class Fetched:
    path: Path
    sha256: str
    status: str  # "downloaded", "resumed" or "present"
    checked: str | None  # whose hash it matched, None when none was known


class _Interrupted(Exception):
    def __init__(self, done: int, total: int | None, why: str):
        super().__init__(why)
        self.done, self.total, self.why = done, total, why


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PART_SUFFIX}")


def _meta_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PART_SUFFIX}.json")


def safe_name(name: str | None) -> str | None:
    """A server-given file name reduced to a plain name in its folder (no folders, no leading dots, no controls)."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    name = "".join(c for c in name if c.isprintable())
    return name if name and name not in (".", "..") and len(name) <= 255 else None


def disposition_name(value: str | None) -> str | None:
    """The file name of a Content-Disposition header (filename* as RFC 6266/2231 says, else filename)."""
    if not value:
        return None
    msg = Message()
    msg["content-disposition"] = value
    return safe_name(msg.get_filename())


def new_client(timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout, read=120.0),
                        headers={"User-Agent": USER_AGENT}, max_redirects=10)


def remember_hashes(path: Path, sha256: str) -> None:
    """Put a file just verified into the hash cache, so that inspect / scan / generate need not read it again."""
    try:
        st = path.resolve().stat()
        store = cache_path()
        cache = read_cache(store) or {"version": CACHE_VERSION, "files": {}}
        cache.setdefault("files", {})[str(path.resolve())] = {
            "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino,
            "hashes": {"sha256": sha256, "a1111_short": sha256[:10], "a1111_legacy": legacy_hash(path)}}
        write_cache(store, cache)
    except OSError:
        pass


def check_present(target: Path, remote: Remote) -> Fetched | None:
    """The file already in place: fine when its sha256 is the expected one (or none is known), refused otherwise."""
    if not target.exists():
        return None
    if not target.is_file():
        raise Sd1kitError(target, "already exists and is not a file")
    actual = file_hashes(target).sha256
    if remote.sha256 is None or actual == remote.sha256:
        return Fetched(target, actual, "present", remote.sha256_from if remote.sha256 else None)
    raise Sd1kitError(target, f"already exists with sha256 {actual}, not the expected {remote.sha256} "
                              f"({remote.sha256_from}); move it away (or choose another --name) to download it")


def _http_error(response: httpx.Response, remote: Remote, where) -> Sd1kitError:
    code = response.status_code
    if code in (401, 403):
        hint = f"set {remote.token_var} to a token that may download it" if remote.token_var else "it needs a login"
        return Sd1kitError(where, f"HTTP {code} {response.reason_phrase}: the file needs an access token; {hint}")
    if code == 404:
        return Sd1kitError(where, f"HTTP 404: not found at {response.url}")
    return Sd1kitError(where, f"HTTP {code} {response.reason_phrase} from {response.url.host}")


class Downloader:
    """Fetches Remotes into folders; `progress` False silences the bar (it is on only when stderr is a terminal)."""

    def __init__(self, client: httpx.Client | None = None, progress: bool | None = None, retries: int = 2,
                 backoff: float | None = None, log: Callable[[str], None] | None = None):
        self.client = client or new_client()
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.retries, self.backoff = retries, backoff
        self.log = log or (lambda line: print(line, file=sys.stderr))

    def fetch(self, remote: Remote, folder: Path, name: str | None = None,
              choose_folder: Callable[[Path], Path] | None = None) -> Fetched:
        """Fetch `remote` into `folder` under `name` (default: the remote's). `choose_folder(part)` may move the
        verified file elsewhere (the folder of its kind, found by reading it) before it gets its name."""
        name = safe_name(name or remote.name)
        target = folder / name if name else None
        if target is not None and choose_folder is None:
            present = check_present(target, remote)
            if present:
                return present
        attempt = 0
        while True:
            try:
                return self._attempt(remote, folder, target, choose_folder)
            except _Interrupted as e:
                attempt += 1
                if attempt > self.retries:
                    got = f"{e.done} of {e.total} bytes" if e.total else f"{e.done} bytes"
                    raise Sd1kitError(target or remote.url, f"download interrupted after {got} ({e.why}); "
                                                            "the part is kept: run the same command again to resume") from None
                time.sleep((RETRY_BACKOFF if self.backoff is None else self.backoff) * attempt)

    def _attempt(self, remote: Remote, folder: Path, target: Path | None, choose_folder) -> Fetched:
        offset, etag = self._resume_point(target, remote) if target is not None else (0, None)
        headers = {**remote.headers, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if etag:
                headers["If-Range"] = etag
        try:
            with self.client.stream("GET", remote.url, headers=headers) as response:
                if target is None:  # the name comes with the response
                    name = disposition_name(response.headers.get("content-disposition")) or \
                        safe_name(unquote(urlparse(str(response.url)).path.rsplit("/", 1)[-1]))
                    if not name:
                        raise Sd1kitError(remote.url, "the server gives no file name; give --name")
                    target = folder / name
                    if choose_folder is None and (present := check_present(target, remote)):
                        return present
                    if part_path(target).exists():  # ask again, for the rest only
                        response.close()
                        remote.name = name
                        return self._attempt(remote, folder, target, choose_folder)
                return self._receive(response, remote, target, offset, choose_folder)
        except httpx.TooManyRedirects:
            raise Sd1kitError(remote.url, "too many redirects") from None
        except httpx.TimeoutException as e:
            raise _Interrupted(_size(target), remote.size, f"timed out: {e.__class__.__name__}") from None
        except httpx.TransportError as e:  # connect failures, a cut connection, a short body
            if isinstance(e, httpx.ConnectError) and not _size(target):
                raise Sd1kitError(remote.url, f"cannot connect ({e})") from None
            raise _Interrupted(_size(target), remote.size, str(e) or e.__class__.__name__) from None

    def _resume_point(self, target: Path, remote: Remote) -> tuple[int, str | None]:
        part, meta = part_path(target), _meta_path(target)
        if not part.exists():
            return 0, None
        try:
            saved = json.loads(meta.read_text())
        except (OSError, ValueError):
            saved = {}
        same = saved.get("sha256") == remote.sha256 and (remote.sha256 or saved.get("url") == remote.url)
        if not same:  # a part of something else under this name: start again
            _remove(part, meta)
            return 0, None
        return part.stat().st_size, saved.get("etag")

    def _receive(self, response: httpx.Response, remote: Remote, target: Path, offset: int, choose_folder) -> Fetched:
        where = remote.label or target.name
        if response.status_code == 416 and offset:  # the part may be whole already
            response.read()
            return self._finish(remote, target, self._hash_part(target), offset, choose_folder, resumed=True)
        if response.status_code >= 400:
            raise _http_error(response, remote, where)
        part, meta = part_path(target), _meta_path(target)
        if response.status_code == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if start != offset:
                raise Sd1kitError(where, f"the server resumed at byte {start}, not {offset}")
        else:
            offset = 0  # 200: the whole file (the Range was ignored, or the file changed: If-Range)
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else remote.size
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            meta.write_text(json.dumps({"url": remote.url, "sha256": remote.sha256,
                                        "etag": response.headers.get("etag")}))
            handle = open(part, "ab" if offset else "wb")
        except OSError as e:
            raise os_error(e, target) from None
        with handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise Sd1kitError(target, "another sd1kit is downloading this file now") from None
            if offset:
                handle.truncate(offset)
            hasher = self._hash_part(target, upto=offset) if offset else hashlib.sha256()
            done = offset
            bar = self._bar(target.name, total, offset)
            try:
                for chunk in response.iter_bytes():  # as it arrives: a cut loses nothing received
                    try:
                        handle.write(chunk)
                    except OSError as e:
                        raise os_error(e, target) from None
                    hasher.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (httpx.TransportError, httpx.StreamError) as e:
                handle.flush()
                raise _Interrupted(done, total, str(e) or e.__class__.__name__) from None
            finally:
                bar.close()
            handle.flush()
            os.fsync(handle.fileno())
        if total is not None and done != total:
            raise _Interrupted(done, total, "the connection closed early")
        return self._finish(remote, target, hasher, done, choose_folder, resumed=bool(offset))

    def _hash_part(self, target: Path, upto: int | None = None):
        hasher, left = hashlib.sha256(), upto
        with open(part_path(target), "rb") as f:
            while left is None or left > 0:
                block = f.read(CHUNK if left is None else min(CHUNK, left))
                if not block:
                    break
                hasher.update(block)
                left = None if left is None else left - len(block)
        return hasher

    def _finish(self, remote: Remote, target: Path, hasher, size: int, choose_folder, resumed: bool) -> Fetched:
        part, meta = part_path(target), _meta_path(target)
        actual = hasher.hexdigest()
        if remote.sha256 and actual != remote.sha256:
            _remove(part, meta)
            raise Sd1kitError(remote.label or target.name,
                              f"sha256 mismatch: the download is {actual}, expected {remote.sha256} "
                              f"({remote.sha256_from}); it was removed, nothing was installed")
        final = target
        if choose_folder is not None:
            final = choose_folder(part) / target.name
            if (present := check_present(final, remote)) is not None:  # found in place after all
                _remove(part, meta)
                return present
        try:
            os.chmod(part, 0o666 & ~_UMASK)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
        except OSError as e:
            raise os_error(e, final) from None
        _remove(meta)
        remember_hashes(final, actual)
        if not remote.sha256:
            self.log(f"{final.name}: sha256 {actual} (no hash was known to check it against)")
        return Fetched(final, actual, "resumed" if resumed else "downloaded", remote.sha256_from if remote.sha256 else None)

    def _bar(self, name: str, total: int | None, initial: int):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                    disable=not self.progress, file=sys.stderr, dynamic_ncols=True, leave=False)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) of `bytes START-END/TOTAL`."""
    try:
        unit, _, rest = (value or "").partition(" ")
        span, _, total = rest.partition("/")
        return int(span.split("-")[0]), (int(total) if total.isdigit() else None)
    except ValueError:
        return None, None


def _size(path: Path | None) -> int:
    try:
        return part_path(path).stat().st_size if path is not None else 0
    except OSError:
        return 0


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
