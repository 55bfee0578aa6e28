"""DIR/manifest.jsonl: one line per finished job (done or failed), appended and flushed to disk after the job's
pictures are in place, so that the folder and the manifest agree after any stop. A rerun reads it: the last line of
each job id wins, done jobs are skipped, failed ones run again. A torn last line (a killed writer) is ignored."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sd1kit.errors import Sd1kitError, os_error

NAME = "manifest.jsonl"


class Manifest:
    def __init__(self, folder: Path):
        self.path = folder / NAME
        self.entries: dict[str, dict] = {}  # job id -> its last line
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise Sd1kitError(str(self.path), f"cannot be read ({e.__class__.__name__}); move it away to start "
                                              "the batch afresh") from None
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a killed writer: its job runs again
            if isinstance(entry, dict) and isinstance(entry.get("job"), str):
                self.entries[entry["job"]] = entry

    def done(self, job_id: str) -> bool:
        """Done, and every picture it lists is still in the folder."""
        entry = self.entries.get(job_id)
        return bool(entry and entry.get("status") == "done" and
                    all((self.path.parent / o["file"]).is_file() for o in entry.get("outputs", [])))

    def append(self, entry: dict) -> None:
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise os_error(e, self.path) from None
        self.entries[entry["job"]] = entry
