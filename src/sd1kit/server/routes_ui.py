"""sd1kit's own API for its web page (under `/sd1kit/v1`): the option table (the page builds its controls from it,
grouped as A1111 groups them), the extra networks with their preview pictures (A1111's `NAME.preview.png` beside
each file), and the models view (the catalog tree, what each file of the models folder is, and the one-click yaml
a v-prediction checkpoint needs). Only files the listings found are ever read; no path comes from a client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from sd1kit.errors import Sd1kitError
from sd1kit.server.state import MODEL_SUFFIXES, State

router = APIRouter(prefix="/sd1kit/v1")
PREVIEWS = (".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp", ".png", ".jpg", ".jpeg", ".webp")
MAX_PREVIEW = 16 << 20
NETWORK_KINDS = {"lora": ("Lora", "LyCORIS"), "hypernetworks": ("hypernetworks",), "embeddings": ()}
EMBEDDING_SUFFIXES = (".pt", ".safetensors", ".bin")
KIND_NAMES = {int: "int", float: "float", str: "str", bool: "bool", tuple: "size"}


@router.get("/options-table")
async def options_table():
    """Every generation option: its payload field(s), kind, default, bounds, choices and help, in A1111's groups."""
    from sd1kit.pipeline.option_surfaces import _api_names
    from sd1kit.pipeline.options import GROUPS, OPTIONS

    options = {o.attr: {"api": list(_api_names(o)) if o.api else [], "kind": KIND_NAMES[o.kind],
                        "default": list(o.default) if isinstance(o.default, tuple) else o.default,
                        "bounds": list(o.bounds) if o.bounds else None,
                        "choices": list(o.choices) if o.choices else None, "help": o.help, "mode": o.mode,
                        "infotext": o.infotext, "infotext_alt": o.alt_key[0] if o.alt_key else None,
                        "cli": o.cli} for o in OPTIONS}
    return {"groups": [{"name": name, "options": list(attrs)} for name, attrs in GROUPS], "options": options}


def _network_files(state, kind: str) -> list[tuple[Path, Path]]:
    """(folder, file) of every listed network of `kind`."""
    from sd1kit.adapters.library import SUFFIXES

    if kind == "embeddings":
        folder = state.embeddings_folder()
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EMBEDDING_SUFFIXES) if folder else []
        return [(folder, p) for p in files]
    suffixes = SUFFIXES if kind == "lora" else (".pt", ".ckpt", ".safetensors")
    return [(state.folder(sub), p) for sub in NETWORK_KINDS[kind] for p in state.files(sub, suffixes)]


def _preview(folder: Path, path: Path) -> Path | None:
    """A1111's preview beside a network file, if it is a file inside the folder."""
    root = folder.resolve()
    for suffix in PREVIEWS:
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file() and candidate.resolve().is_relative_to(root):
            return candidate
    return None


def _tag(kind: str, name: str) -> str:
    return {"lora": f"<lora:{name}:1>", "hypernetworks": f"<hypernet:{name}:1>", "embeddings": name}[kind]


@router.get("/networks")
async def networks(state: State):
    """LoRA / LyCORIS, embeddings and hypernetworks: name, the tag a prompt uses, the file inside its folder, and
    the URL of its preview picture (null without one)."""
    def listing():
        out = {}
        for kind in NETWORK_KINDS:
            rows = []
            for folder, path in _network_files(state, kind):
                rel = path.relative_to(folder).as_posix()
                rows.append({"name": path.stem, "tag": _tag(kind, path.stem), "file": rel,
                             "folder": folder.name, "preview": f"/sd1kit/v1/preview/{kind}/{folder.name}/"
                             + quote(rel) if _preview(folder, path) else None})  # "#", "?", "%" in names
            out[kind] = rows
        return out
    return await asyncio.to_thread(listing)


@router.get("/preview/{kind}/{folder}/{file:path}")
async def preview(kind: str, folder: str, file: str, state: State):
    """The preview picture of a listed network (matched against the listing, never joined as a path)."""
    if kind not in NETWORK_KINDS:
        raise HTTPException(404, f"no network kind {kind!r}")
    for root, path in _network_files(state, kind):
        if root.name == folder and path.relative_to(root).as_posix() == file:
            found = _preview(root, path)
            if found is not None and found.stat().st_size <= MAX_PREVIEW:
                return FileResponse(found, headers={"Cache-Control": "max-age=60"})
            break
    raise HTTPException(404, f"no preview for {file!r}")


@router.get("/models")
async def models(state: State):
    """The catalog (every record: lineage, files, prediction, settings) and the models folder's checkpoints as
    `sd1kit models scan` sees them (kind, family, prediction and its source, catalog match, yaml state)."""
    from sd1kit.catalog import render
    from sd1kit.catalog.advice import scan_one

    def listing():
        folder = state.folder("Stable-diffusion")
        entries = []
        for path in state.files("Stable-diffusion", MODEL_SUFFIXES):
            entry = scan_one(path).as_json()
            entries.append({**entry, "name": path.relative_to(folder).as_posix()})
        return {"catalog": json.loads(render.as_json()), "scan": entries}
    return await asyncio.to_thread(listing)


class YamlRequest(BaseModel):
    name: str = Field(..., max_length=1024, description="a checkpoint as /sd1kit/v1/models lists it")


@router.post("/models/yaml")
async def write_yaml(body: YamlRequest, state: State):
    """Write the yaml a v-prediction checkpoint needs beside it (A1111 reads `NAME.yaml`), as
    `sd1kit models scan --write-yaml` does for one file."""
    from sd1kit.catalog.advice import scan_one

    folder = state.folder("Stable-diffusion")
    path = next((p for p in state.files("Stable-diffusion", MODEL_SUFFIXES)
                 if p.relative_to(folder).as_posix() == body.name), None)
    if path is None:
        raise Sd1kitError("name", f"{body.name!r} is not a checkpoint in the models folder")

    def write():
        entry = scan_one(path, write_yaml=True)
        if entry.yaml is None:
            raise Sd1kitError(body.name, f"needs no yaml ({entry.prediction or 'epsilon'} prediction)")
        return {**entry.as_json(), "name": body.name}
    return await asyncio.to_thread(write)
