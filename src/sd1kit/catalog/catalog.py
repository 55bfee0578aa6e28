"""Loading the catalog and finding records by id, name, alias or any hash A1111 and civitai print."""

from __future__ import annotations

import difflib
import os
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sd1kit.catalog.schema import ModelRecord, parse_record, validate
from sd1kit.errors import Sd1kitError


def parse_catalog(text: str) -> list[ModelRecord]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Sd1kitError("catalog", f"not valid TOML ({e})") from None
    records = [parse_record(raw) for raw in data.get("model", [])]
    validate(records)
    return records


def catalog() -> tuple[ModelRecord, ...]:
    """The packaged records, plus the user's own from the TOML file $SD1KIT_CATALOG names (same schema)."""
    return _load(os.environ.get("SD1KIT_CATALOG"))


@lru_cache(maxsize=4)
def _load(extra: str | None) -> tuple[ModelRecord, ...]:
    text = resources.files("sd1kit.catalog").joinpath("data/catalog.toml").read_text(encoding="utf-8")
    if extra:
        try:
            text += "\n" + Path(extra).read_text(encoding="utf-8")
        except OSError as e:
            raise Sd1kitError(extra, f"cannot read the user catalog ({e.strerror})") from None
    return tuple(parse_catalog(text))


def by_id() -> dict[str, ModelRecord]:
    return {r.id: r for r in catalog()}


def find(name: str) -> ModelRecord:
    wanted = name.strip().lower()
    for record in catalog():
        if wanted in (record.id, record.name.lower(), (record.guide_id or "").lower(), *(a.lower() for a in record.aliases)):
            return record
    labels = {r.id: r for r in catalog()} | {r.name.lower(): r for r in catalog()}
    close = difflib.get_close_matches(wanted, list(labels), n=1)
    hint = f"; did you mean {labels[close[0]].id!r}?" if close else ""
    raise Sd1kitError("model", f"{name!r} is not in the catalog{hint}")


def match_hash(sha256: str | None = None, short: str | None = None, legacy: str | None = None):
    """(record, file) for a known file, by sha256, A1111 short hash or legacy hash."""
    for record in catalog():
        for f in record.files:
            if (sha256 and f.sha256 == sha256.lower()) or (short and (f.short == short.lower() or
                                                                     (f.sha256 or "").startswith(short.lower()))) \
                    or (legacy and f.legacy == legacy.lower()):
                return record, f
    return None


def children(record_id: str) -> list[tuple[ModelRecord, str]]:
    return [(r, e.relation) for r in catalog() for e in r.parents if e.id == record_id]
