"""Streaming, resumable, verified downloads with httpx.

A file is written to `.NAME.sd1kit-download` beside where it goes (a name A1111 and `sd1kit models scan` do not
list), with `.NAME.sd1kit-download.json` saying what it is a part of. The part is opened without following links
(a link or a file with other names planted there is refused) and without truncating it, then locked (flock);
only the lock holder truncates, writes, hashes and renames it, and it holds the lock until the part has its final
name, so the sha256 of the bytes it wrote is the sha256 of the file renamed. A second sd1kit fetching the same file
meanwhile stops at once, touching nothing.

An interrupted download keeps that file and the next run asks for the rest with a Range request: only when the
expected sha256 is known, or the server gave a strong ETag (sent as If-Range, and the answer's ETag and total
must be the saved ones); with neither it starts again from zero, as it does when the server ignores the Range, and
a 416 answer is taken as "the part is whole" only when its `Content-Range: bytes */N` names the part's size. Only
when the whole file's sha256 matches the expected one (the catalog's, Civitai's or Hugging Face's, or `--sha256`;
printed when none is known) is it renamed to its name; a mismatch removes the part and names both hashes. A file
already in place with the expected hash is not fetched again (its hash comes from the hash cache when it was hashed
before).

Size: a download stops, and its part is removed, as soon as more bytes arrive than expected: the source's exact
size (the Hub's metadata), a bound (the catalog's rounded size, Civitai's sizeKB), the answer's Content-Length or
Content-Range total, and when none of these is known DEFAULT_LIMIT (16 GiB, more than any SD1 file).

Redirects are followed (at most 10) to http(s) URLs only, never from https down to plain http; a URL's query (often
a signature or a token) is left out of messages and of the part's .json.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

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
DEFAULT_LIMIT = 16 << 30  # bytes accepted when nothing says how big the file is (the largest SD1 files are ~15 GB)
NAME_MAX = 255  # bytes of one file name (the part's .json, the longest name sd1kit writes, included)
_NAME_EXTRA = len(f".{PART_SUFFIX}.json".encode())
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass
class Remote:
    """One file to fetch: where from, under which name, and what it must hash to."""

    url: str
    name: str | None = None  # None: the response's Content-Disposition, else the last part of the final URL
    sha256: str | None = None
    sha256_from: str | None = None  # who says so: "catalog", "civitai", "Hugging Face", "--sha256"
    size: int | None = None  # the exact size, when the source says it (the Hub's metadata)
    limit: int | None = None  # the most bytes it can be (a rounded size: the catalog's, Civitai's sizeKB)
    headers: dict = field(default_factory=dict)  # sent to the first host only (httpx drops Authorization on redirects off it)
    token_var: str | None = None  # the variable to name on 401/403
    kind: str | None = None  # what the source says the file is (checkpoint, lycoris, ...)
    label: str | None = None  # the source as the user gave it (its query left out)


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


class _Restart(Exception):
    """The part cannot be continued (already emptied): ask for the whole file."""


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PART_SUFFIX}")


def _meta_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{PART_SUFFIX}.json")


def shown_url(url: str | httpx.URL | None) -> str:
    """A URL as messages and the part's .json show it: without its query, fragment or password (signatures,
    tokens)."""
    text = str(url or "")
    try:
        u = urlsplit(text)
        netloc = u.netloc.rsplit("@", 1)[-1]
        return urlunsplit((u.scheme, netloc, u.path, "", ""))
    except ValueError:
        return text.split("?", 1)[0].split("#", 1)[0]


def safe_name(name: str | None) -> str | None:
    """A server-given file name reduced to a plain name in its folder (no folders, no leading dots, no controls);
    its length is checked where it is used (check_name)."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    name = "".join(c for c in name if c.isprintable())
    return name if name and name not in (".", "..") else None


def check_name(name: str) -> str:
    """`name` when it and sd1kit's part-file names beside it fit a file system's name length, else one error."""
    size = len(os.fsencode(name))
    if size + _NAME_EXTRA > NAME_MAX:
        raise Sd1kitError(name[:40] + "...", f"the file name is too long ({size} bytes; sd1kit's part file beside it "
                                             f"allows {NAME_MAX - _NAME_EXTRA}): give a shorter one with --name")
    return name


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
        return Sd1kitError(where, f"HTTP 404: not found at {shown_url(response.url)}")
    return Sd1kitError(where, f"HTTP {code} {response.reason_phrase} from {response.url.host}")


def _plain_file_or_absent(path: Path) -> bool:
    """Whether `path` exists; refused when it is anything but a regular file (a planted link, a folder, a FIFO)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise os_error(e, path) from None
    if not stat.S_ISREG(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise Sd1kitError(path, f"is {what}; sd1kit writes only a part file of its own there: remove it")
    return True


def _read_meta(meta: Path) -> dict:
    if not _plain_file_or_absent(meta):
        return {}
    try:
        fd = os.open(meta, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            saved = json.loads(f.read(1 << 16))
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _write_meta(meta: Path, data: dict, where) -> None:
    _plain_file_or_absent(meta)
    try:
        fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _CLOEXEC, 0o666)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Sd1kitError(meta, "is a symbolic link; remove it") from None
        raise os_error(e, where) from None


class _Part:
    """The part file of a target, opened without following a link and without truncating it, then locked. Only
    the holder changes it (truncates, writes, renames it to its final name) and it holds the lock until then: a
    second sd1kit on the same target stops before touching the part or its .json."""

    def __init__(self, target: Path):
        self.target, self.path, self.meta = target, part_path(target), _meta_path(target)
        self.handle = None
        self.gone = False  # renamed or removed by us

    def __enter__(self) -> "_Part":
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(e, self.target) from None
        for _ in range(5):
            existed = _plain_file_or_absent(self.path)
            _plain_file_or_absent(self.meta)
            flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | (0 if existed else os.O_EXCL)
            try:
                fd = os.open(self.path, flags, 0o666)
            except FileExistsError:
                continue  # made meanwhile: open that one
            except FileNotFoundError:
                continue  # removed meanwhile
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise Sd1kitError(self.path, "is a symbolic link; remove it") from None
                raise os_error(e, self.target) from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                raise Sd1kitError(self.path, "is not a part file of sd1kit's own (a link, or a file with other "
                                             "names); remove it")
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise Sd1kitError(self.target, "another sd1kit is downloading this file now") from None
            try:
                now = os.lstat(self.path)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)  # the holder before us renamed or removed it: take the one there now
                continue
            self.ident = (st.st_dev, st.st_ino)
            self.handle = os.fdopen(fd, "r+b")
            return self
        raise Sd1kitError(self.target, "its part file keeps changing under another process; try again")

    @property
    def size(self) -> int:
        return os.fstat(self.handle.fileno()).st_size

    def _ours(self) -> bool:
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    def empty(self) -> None:
        """Nothing to continue: the part emptied, its .json removed."""
        self.handle.truncate(0)
        self.handle.seek(0)
        _remove(self.meta)

    def discard(self) -> None:
        if not self.gone and self._ours():
            _remove(self.path)
        _remove(self.meta)
        self.gone = True

    def __exit__(self, *exc) -> None:
        try:
            if not self.gone and self._ours() and self.size == 0:  # nothing received: leave nothing behind
                self.discard()
        finally:
            self.handle.close()  # the lock goes with it


def _strong_etag(value: str | None) -> str | None:
    """An ETag If-Range may carry (a weak one, W/"...", may not)."""
    return value if value and not value.startswith("W/") else None


def _limit(remote: Remote, total: int | None) -> int:
    """The most bytes the file can have: the source's size or bound, else the answer's own total, else
    DEFAULT_LIMIT."""
    bounds = [b for b in (remote.size, remote.limit) if b]
    if bounds:
        return min(bounds)
    return total if total is not None else DEFAULT_LIMIT


class Downloader:
    """Fetches Remotes into folders; `progress` False silences the bar (it is on only when stderr is a terminal)."""

    def __init__(self, client: httpx.Client | None = None, progress: bool | None = None, retries: int = 2,
                 backoff: float | None = None, log: Callable[[str], None] | None = None):
        self.client = client or new_client()
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.retries, self.backoff = retries, backoff
        self.log = log or (lambda line: print(line, file=sys.stderr))

    def fetch(self, remote: Remote, folder: Path, name: str | None = None,
              choose_folder: Callable[[Path], Path] | None = None,
              on_name: Callable[[str], None] | None = None) -> Fetched:
        """Fetch `remote` into `folder` under `name` (default: the remote's). `choose_folder(part)` may move the
        verified file elsewhere (the folder of its kind, found by reading it) before it gets its name;
        `on_name(name)` hears a name that only the answer gave (it may set the expected hash)."""
        name = safe_name(name or remote.name)
        target = folder / check_name(name) if name else None
        if target is not None and choose_folder is None:
            present = check_present(target, remote)
            if present:
                return present
        attempt = restarts = 0
        while True:
            try:
                return self._attempt(remote, folder, target, choose_folder, on_name)
            except _Restart as e:
                restarts += 1
                if restarts > 2:
                    raise Sd1kitError(target or shown_url(remote.url), f"cannot resume ({e}), and asking for the "
                                                                       "whole file did not help") from None
            except _Interrupted as e:
                if target is None and remote.name:  # the first answer named it: ask for the rest only
                    target = folder / remote.name
                attempt += 1
                if attempt > self.retries:
                    got = f"{e.done} of {e.total} bytes" if e.total else f"{e.done} bytes"
                    raise Sd1kitError(target or shown_url(remote.url), f"download interrupted after {got} ({e.why}); "
                                      "the part is kept: run the same command again to resume") from None
                time.sleep((RETRY_BACKOFF if self.backoff is None else self.backoff) * attempt)

    def _check_chain(self, remote: Remote, response: httpx.Response) -> None:
        """Refuse a redirect from https down to plain http (what arrives could be anyone's)."""
        if urlparse(remote.url).scheme.lower() != "https":
            return
        for hop in [r.url for r in response.history] + [response.url]:
            if hop.scheme != "https":
                raise Sd1kitError(remote.label or shown_url(remote.url),
                                  f"refused: redirected from https to {shown_url(hop)}")

    def _attempt(self, remote: Remote, folder: Path, target: Path | None, choose_folder, on_name) -> Fetched:
        try:
            if target is None:  # the name comes with the response
                with self.client.stream("GET", remote.url, headers={**remote.headers, "Accept-Encoding": "identity"}) \
                        as response:
                    self._check_chain(remote, response)
                    if response.status_code >= 400:
                        raise _http_error(response, remote, remote.label or shown_url(remote.url))
                    name = disposition_name(response.headers.get("content-disposition")) or \
                        safe_name(unquote(urlparse(str(response.url)).path.rsplit("/", 1)[-1]))
                    if not name:
                        raise Sd1kitError(remote.label or shown_url(remote.url), "the server gives no file name; give --name")
                    target = folder / check_name(name)
                    if on_name is not None:
                        on_name(name)
                    if choose_folder is None and (present := check_present(target, remote)):
                        return present
                    remote.name = name
                    if not _size(target):
                        with _Part(target) as part:
                            if part.size == 0:  # nothing to resume: take this answer
                                return self._receive(response, remote, target, part, 0, {}, choose_folder)
                # a part is there: ask again, for the rest only
                return self._attempt(remote, folder, target, choose_folder, None)
            with _Part(target) as part:
                offset, saved = self._resume_point(part, remote)
                headers = {**remote.headers, "Accept-Encoding": "identity"}
                if offset:
                    headers["Range"] = f"bytes={offset}-"
                    if saved.get("etag"):
                        headers["If-Range"] = saved["etag"]
                with self.client.stream("GET", remote.url, headers=headers) as response:
                    self._check_chain(remote, response)
                    return self._receive(response, remote, target, part, offset, saved, choose_folder)
        except httpx.TooManyRedirects:
            raise Sd1kitError(shown_url(remote.url), "too many redirects") from None
        except httpx.UnsupportedProtocol as e:  # a redirect to file://, ftp://, ...
            raise Sd1kitError(remote.label or shown_url(remote.url),
                              f"refused: redirected to a URL that is not http(s) ({e})") from None
        except httpx.InvalidURL as e:
            raise Sd1kitError(remote.label or shown_url(remote.url), f"not a URL httpx can fetch ({e})") from None
        except httpx.TimeoutException as e:
            raise _Interrupted(_size(target), remote.size, f"timed out: {e.__class__.__name__}") from None
        except httpx.TransportError as e:  # connect failures, a cut connection, a short body
            if isinstance(e, httpx.ConnectError) and not _size(target):
                raise Sd1kitError(shown_url(remote.url), f"cannot connect ({e})") from None
            raise _Interrupted(_size(target), remote.size, str(e) or e.__class__.__name__) from None

    def _resume_point(self, part: _Part, remote: Remote) -> tuple[int, dict]:
        """Where to continue the part (0: from the start, the part emptied) and what its .json saved. A part is
        continued only when what it is a part of can be told: by the expected sha256, or by a strong ETag."""
        size = part.size
        if not size:
            return 0, {}
        saved = _read_meta(part.meta)
        same = saved.get("sha256") == remote.sha256 and (remote.sha256 or saved.get("url") == shown_url(remote.url))
        etag = _strong_etag(saved.get("etag"))
        saved["etag"] = etag
        total = saved.get("total")
        if not same or not (remote.sha256 or etag) or size > _limit(remote, total if isinstance(total, int) else None):
            part.empty()  # a part of something else, of a file that may have changed, or too big: start again
            return 0, {}
        return size, saved

    def _receive(self, response: httpx.Response, remote: Remote, target: Path, part: _Part, offset: int,
                 saved: dict, choose_folder) -> Fetched:
        where = remote.label or target.name
        if response.status_code == 416 and offset:  # the part may be whole already
            response.read()
            unit, _, rest = (response.headers.get("content-range") or "").partition(" ")
            whole = rest[2:] if unit.lower() == "bytes" and rest.startswith("*/") else ""
            n = int(whole) if whole.isdigit() else None
            if n is not None and n == offset == part.size and remote.size in (None, n) \
                    and n <= _limit(remote, n) and saved.get("total") in (None, n):
                return self._finish(remote, target, part, self._hash_part(part), offset, choose_folder, resumed=True)
            part.empty()
            raise _Restart(f"HTTP 416 without Content-Range bytes */{offset}")
        if response.status_code >= 400:
            raise _http_error(response, remote, where)
        etag = response.headers.get("etag")
        if response.status_code == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if start != offset:
                raise Sd1kitError(where, f"the server resumed at byte {start}, not {offset}")
            if (saved.get("etag") and (etag or not remote.sha256) and etag != saved["etag"]) or \
                    (saved.get("total") is not None and total != saved["total"]):
                part.empty()  # a Range answered from another version of the file
                raise _Restart("the file changed on the server")
        else:
            offset = 0  # 200: the whole file (the Range was ignored, or the file changed: If-Range)
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        limit = _limit(remote, total)
        if total is not None and total > limit:
            part.discard()
            raise Sd1kitError(where, f"the server offers {total} bytes, more than the {limit} this file can have; "
                                     "nothing was kept")
        end = total if total is not None else limit
        handle = part.handle
        try:
            handle.truncate(offset)  # only now, under the lock
            handle.seek(offset)
            _write_meta(part.meta, {"url": shown_url(remote.url), "sha256": remote.sha256, "etag": etag,
                                    "total": total}, target)
        except OSError as e:
            raise os_error(e, target) from None
        hasher = self._hash_part(part, upto=offset) if offset else hashlib.sha256()
        handle.seek(offset)
        done = offset
        bar = self._bar(target.name, total if total is not None else remote.size, offset)
        try:
            for chunk in response.iter_bytes():  # as it arrives: a cut loses nothing received
                if done + len(chunk) > end:
                    part.discard()
                    raise Sd1kitError(where, f"the server sent more than the {end} bytes expected; the download "
                                             "was stopped and removed")
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
        return self._finish(remote, target, part, hasher, done, choose_folder, resumed=bool(offset))

    def _hash_part(self, part: _Part, upto: int | None = None):
        hasher, left = hashlib.sha256(), upto
        f = part.handle
        f.seek(0)
        while left is None or left > 0:
            block = f.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            hasher.update(block)
            left = None if left is None else left - len(block)
        return hasher

    def _finish(self, remote: Remote, target: Path, part: _Part, hasher, size: int, choose_folder,
                resumed: bool) -> Fetched:
        """The part, still locked, checked and renamed to its name."""
        if part.size != size:
            part.discard()
            raise Sd1kitError(target, f"the part file changed while downloading ({part.size} bytes, {size} "
                                      "written); it was removed: run the same command again")
        if fcntl is None:  # no lock kept others out: hash what is on disk
            hasher = self._hash_part(part)
        actual = hasher.hexdigest()
        if remote.sha256 and actual != remote.sha256:
            part.discard()
            raise Sd1kitError(remote.label or target.name,
                              f"sha256 mismatch: the download is {actual}, expected {remote.sha256} "
                              f"({remote.sha256_from}); it was removed, nothing was installed")
        final = target
        if choose_folder is not None:
            try:
                final = choose_folder(part.path) / target.name
                present = check_present(final, remote)
            except BaseException:
                part.discard()
                raise
            if present is not None:  # found in place after all
                part.discard()
                return present
        try:
            mode = 0o666 & ~_UMASK
            if hasattr(os, "fchmod"):
                os.fchmod(part.handle.fileno(), mode)
            else:  # pragma: no cover - Windows
                os.chmod(part.path, mode)
            final.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:  # pragma: no cover - Windows cannot rename an open file
                part.handle.close()
            os.replace(part.path, final)
        except OSError as e:
            raise os_error(e, final) from None
        part.gone = True
        _remove(part.meta)
        remember_hashes(final, actual)  # still locked: the file renamed is the one hashed
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
        return os.lstat(part_path(path)).st_size if path is not None else 0
    except OSError:
        return 0


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
