"""Errors that carry the file (or field) they are about, so the CLI can print one line."""

from __future__ import annotations

import os


class Sd1kitError(Exception):
    """A user-facing error: `where` names the file or field, `message` says what is wrong."""

    def __init__(self, where: str | os.PathLike | None, message: str):
        self.where = str(where) if where is not None else None
        self.message = message
        super().__init__(f"{self.where}: {message}" if self.where else message)


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
