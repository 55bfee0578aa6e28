"""The catalog's schema: every record's fields with their types and allowed values, checked on load, so that a
bad record fails with its id and field named."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sd1kit.errors import Sd1kitError

KINDS = ("checkpoint", "lycoris", "lora", "controlnet", "vae", "setup")
RELATIONS = ("fine-tune", "version", "merge", "lycoris-applied", "component", "variant")
PREDICTIONS = ("epsilon", "v")
YAMLS = ("v1-inference", "v-prediction")
USES = ("anime", "nsfw", "furry", "qr-code")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_HEX = {"sha256": 64, "short": 10, "legacy": 8}


@dataclass(frozen=True)
class FileRecord:
    name: str
    size: str | None = None
    precision: str | None = None
    sha256: str | None = None
    short: str | None = None
    legacy: str | None = None
    source: str | None = None  # where to download it: hf:OWNER/REPO/PATH[@REV], civitai:MODEL@VERSION, an https URL
    prediction: str | None = None  # an adapter file: the prediction type of the models it is made for


@dataclass(frozen=True)
class Edge:
    id: str
    relation: str


@dataclass(frozen=True)
class Settings:
    clip_skip: int | None = None
    cfg: float | None = None
    cfg_rescale: float | None = None
    steps: int | None = None
    samplers: tuple[str, ...] = ()
    resolution: tuple[int, int] | None = None  # (min, max) side in pixels
    ensd: int | None = None


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    kind: str
    guide_id: str | None = None
    aliases: tuple[str, ...] = ()
    author: str | None = None
    released: str | None = None
    parents: tuple[Edge, ...] = ()
    training: dict = field(default_factory=dict)
    links: tuple[str, ...] = ()
    files: tuple[FileRecord, ...] = ()
    prediction: str | None = None
    confidence: str = "confirmed"
    zero_terminal_snr: bool | None = None
    yaml: str | None = None
    settings: Settings = Settings()
    prompt_style: str | None = None
    quality_tags: str | None = None
    negative: str | None = None
    adapters: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    recommended: bool = False
    notes: tuple[str, ...] = ()


def _fail(record: str, field_name: str, why: str):
    raise Sd1kitError("catalog", f"model {record!r}, field {field_name!r}: {why}")


def _type(rid, name, value, kinds):
    if not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        _fail(rid, name, f"expected {names}, got {type(value).__name__}")
    return value


def _choice(rid, name, value, choices):
    if value is not None and value not in choices:
        _fail(rid, name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _strings(rid, name, value) -> tuple[str, ...]:
    _type(rid, name, value, list)
    return tuple(_type(rid, name, v, str) for v in value)


def _file(rid, raw) -> FileRecord:
    _type(rid, "files", raw, dict)
    unknown = set(raw) - set(FileRecord.__dataclass_fields__)
    if unknown or "name" not in raw:
        _fail(rid, "files", f"each file needs a name; unknown keys {sorted(unknown)}")
    for key, length in _HEX.items():
        value = raw.get(key)
        if value is not None and not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
            _fail(rid, f"files.{key}", f"{value!r} is not {length} lower-case hex digits")
    if raw.get("sha256") and raw.get("short") and not raw["sha256"].startswith(raw["short"]):
        _fail(rid, "files.short", "the short hash is not the start of the sha256")
    if raw.get("source") is not None:
        from sd1kit.install.sources import parse_source

        try:
            parse_source(_type(rid, "files.source", raw["source"], str))
        except Sd1kitError as e:
            _fail(rid, "files.source", e.message)
    _choice(rid, "files.prediction", raw.get("prediction"), PREDICTIONS)
    parts = _type(rid, "files.name", raw["name"], str).replace("\\", "/").split("/")
    if raw["name"].startswith("/") or any(p in ("", ".", "..") for p in parts):
        _fail(rid, "files.name", f"{raw['name']!r} must be a relative path without . or .. parts")
    return FileRecord(**raw)


def _settings(rid, raw) -> Settings:
    _type(rid, "settings", raw, dict)
    unknown = set(raw) - set(Settings.__dataclass_fields__)
    if unknown:
        _fail(rid, "settings", f"unknown keys {sorted(unknown)}")
    values = dict(raw)
    for key, kind in (("clip_skip", int), ("steps", int), ("ensd", int), ("cfg", (int, float)),
                      ("cfg_rescale", (int, float))):
        if key in values:
            _type(rid, f"settings.{key}", values[key], kind)
    if "samplers" in values:
        values["samplers"] = _strings(rid, "settings.samplers", values["samplers"])
    if "resolution" in values:
        res = values["resolution"]
        if not (isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) for v in res) and res[0] <= res[1]):
            _fail(rid, "settings.resolution", "expected [min, max] pixels")
        values["resolution"] = tuple(res)
    return Settings(**values)


def parse_record(raw: dict) -> ModelRecord:
    rid = raw.get("id", "?")
    _type(rid, "id", raw.get("id"), str)
    _type(rid, "name", raw.get("name"), str)
    unknown = set(raw) - set(ModelRecord.__dataclass_fields__)
    if unknown:
        _fail(rid, sorted(unknown)[0], "unknown field")
    values = dict(raw)
    _choice(rid, "kind", values.get("kind"), KINDS)
    _choice(rid, "prediction", values.get("prediction"), PREDICTIONS)
    _choice(rid, "confidence", values.get("confidence"), ("confirmed", "inferred"))
    _choice(rid, "yaml", values.get("yaml"), YAMLS)
    if values.get("released") is not None and not _DATE.match(str(values["released"])):
        _fail(rid, "released", "expected YYYY, YYYY-MM or YYYY-MM-DD")
    for key in ("aliases", "links", "adapters", "notes", "uses"):
        if key in values:
            values[key] = _strings(rid, key, values[key])
    for use in values.get("uses", ()):
        _choice(rid, "uses", use, USES)
    if "parents" in values:
        edges = []
        for edge in _type(rid, "parents", values["parents"], list):
            _type(rid, "parents", edge, dict)
            if set(edge) != {"id", "relation"}:
                _fail(rid, "parents", "each parent is { id, relation }")
            _choice(rid, "parents.relation", edge["relation"], RELATIONS)
            edges.append(Edge(edge["id"], edge["relation"]))
        values["parents"] = tuple(edges)
    if "files" in values:
        values["files"] = tuple(_file(rid, f) for f in _type(rid, "files", values["files"], list))
    if "settings" in values:
        values["settings"] = _settings(rid, values["settings"])
    for key in ("zero_terminal_snr", "recommended"):
        if key in values:
            _type(rid, key, values[key], bool)
    if "training" in values:
        _type(rid, "training", values["training"], dict)
    return ModelRecord(**values)


def validate(records: list[ModelRecord]) -> None:
    """Ids unique, every edge and adapter reference points to a record, no cycles."""
    ids = [r.id for r in records]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise Sd1kitError("catalog", f"duplicate model ids: {sorted(dupes)}")
    known = set(ids)
    for r in records:
        for edge in r.parents:
            if edge.id not in known:
                _fail(r.id, "parents", f"{edge.id!r} is not in the catalog")
        for adapter in r.adapters:
            if adapter not in known:
                _fail(r.id, "adapters", f"{adapter!r} is not in the catalog")
    parents = {r.id: [e.id for e in r.parents] for r in records}
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        if state.get(node) == 1:
            raise Sd1kitError("catalog", f"the lineage has a cycle through {node!r}")
        if state.get(node) != 2:
            state[node] = 1
            for p in parents[node]:
                visit(p)
            state[node] = 2

    for node in parents:
        visit(node)
