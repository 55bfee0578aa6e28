"""Atomic output: write to a temporary file beside the target, then rename over it.

Temporary files are named `.NAME.XXXXXXXX.tmp` beside the target. One left by a run that was killed (SIGKILL,
power loss) is removed by the next write of the same target, but only if it is older than this process, so a
concurrent writer's file is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator

from sd1kit.errors import os_error

_STARTED = time.time()  # when this process (its first import of sd1kit) started
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to `target`.

    On any error the temporary file is removed and `target` is left as it was; an OSError (a full disk, a
    read-only folder) is reported as an Sd1kitError naming the target, not the temporary file.
    """
    target = Path(target)
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise os_error(e, target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    except OSError as e:  # about the temporary file (or nameless, as a full disk on write): name the target
        about_output = e.filename is None or str(e.filename) in (tmp, str(target))
        raise os_error(e, target if about_output else None) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove `.TARGET.XXXXXXXX.tmp` files beside `target` older than this process; return what was removed."""
    removed = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for path in candidates:
        match = _TEMP_NAME.match(path.name)
        try:
            if match and match["name"] == target.name and path.is_file() and path.stat().st_mtime < _STARTED:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
