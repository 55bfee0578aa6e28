"""Atomic output: write to a temporary file beside the target, then rename over it.

Temporary files are named `.NAME.sd1kit-PID-XXXXXXXX.tmp` beside the target. One left by a run that was killed
(SIGKILL, power loss) is removed by the next write of the same target, only when its writer's process is gone and
the file is older than this process: a running writer's file, or anything not named by this pattern, is never
touched. The output gets the permissions a plain `open` would give it (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator

from sd1kit.errors import os_error

_STARTED = time.time()  # when this process (its first import of sd1kit) started
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.sd1kit-(?P<pid>[0-9]+)-[a-z0-9_]{8}\.tmp$")
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}  # a nameless one of these is the output's


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to `target`.

    On any error the temporary file is removed and `target` is left as it was; an OSError (a full disk, a
    read-only folder) is reported as an Sd1kitError naming the target, not the temporary file.
    """
    target = Path(target)
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.sd1kit-{os.getpid()}-", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise os_error(e, target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except OSError as e:
        # about the temporary file or the target, or a nameless full disk / read-only file system while writing:
        # name the target; any other error (an input that failed to read) keeps its own file, or none
        about_output = str(e.filename) in (tmp, str(target)) if e.filename is not None else e.errno in _WRITE_ERRNOS
        if not about_output:
            raise
        raise os_error(e, target) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove `.TARGET.XXXXXXXX.tmp` files beside `target` older than this process; return what was removed."""
    removed = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.sd1kit-*.tmp"))
    except OSError:
        return removed
    for path in candidates:
        match = _TEMP_NAME.match(path.name)
        try:
            if match and match["name"] == target.name and not _alive(int(match["pid"])) and path.is_file() \
                    and path.stat().st_mtime < _STARTED:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a pid this system cannot have): not ours to judge
    return True


def _read_umask() -> int:
    """The process's umask, read once at import (setting it to read it is not safe once threads write files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (a link, a relative spelling, a hard link): an output must not be its input."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
