"""Errors that carry the file (or field) they are about, so the CLI can print one line."""

from __future__ import annotations

import errno
import os


class Sd1kitError(Exception):
    """A user-facing error: `where` names the file or field, `message` says what is wrong."""

    def __init__(self, where: str | os.PathLike | None, message: str):
        self.where = str(where) if where is not None else None
        self.message = message
        super().__init__(f"{self.where}: {message}" if self.where else message)

    def __reduce__(self):  # picklable and copyable whatever a subclass's __init__ takes (jobs, process pools)
        state = dict(self.__dict__)
        if isinstance(self, OSError):  # errno, strerror, filename live outside __dict__
            state.update(errno=self.errno, strerror=self.strerror, filename=self.filename)
        return _restore, (type(self), self.where, self.message, state)


def _restore(cls, where, message, state):
    error = cls.__new__(cls)
    Sd1kitError.__init__(error, where, message)
    for key, value in state.items():
        setattr(error, key, value)
    return error


class BadFileError(Sd1kitError):
    """The file is not what it claims to be (truncated, lying header, wrong container)."""


class UnsafePickleError(Sd1kitError):
    """A pickle references globals outside the allow-list; nothing was executed."""

    def __init__(self, where, unsafe_globals: list[str]):
        self.unsafe_globals = list(unsafe_globals)
        shown = ", ".join(self.unsafe_globals[:8]) + (" ..." if len(self.unsafe_globals) > 8 else "")
        super().__init__(where, f"unsafe pickle, refused without executing it: references {shown}")


class UnsupportedModelError(Sd1kitError):
    """A model of another family (SDXL, SD2, ...) where an SD1 model is needed."""


# What an OS error means to someone running a command: its own words per errno, never "internal error".
_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system: cannot write here",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder (removed while sd1kit was using it?)",
    errno.ENOTDIR: "not a folder",
    errno.EISDIR: "a folder, not a file",
    errno.EIO: "input/output error (a failing disk or a network drive that went away)",
    errno.EFBIG: "file too large for this file system",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files",
}


class FileSystemError(Sd1kitError, OSError):
    """An OSError said in the user's words; still an OSError, so code that tolerates one (a cache that cannot be
    written) goes on tolerating it."""

    def __str__(self) -> str:  # not OSError's "[Errno N] ..." form, which errno and filename would switch on
        return f"{self.where}: {self.message}" if self.where else self.message


def os_error(e: OSError, where: str | os.PathLike | None = None) -> Sd1kitError:
    """An OSError as a one-line Sd1kitError naming the file (`where` for a temporary file's real target)."""
    if isinstance(e, Sd1kitError):
        return e
    message = _OS_ERRORS.get(e.errno, e.strerror or e.__class__.__name__)
    target = where if where is not None else (e.filename if e.filename is not None else None)
    error = FileSystemError(target, message)
    error.errno, error.strerror, error.filename = e.errno, message, str(target) if target is not None else None
    return error
