"""Textual-inversion embeddings from a folder, as A1111 loads them: the file stem is the name, a prompt that
spells the name gets the embedding's vectors in place of its tokens. Pickled `.pt`/`.bin` files go through the
safe loader; nothing is executed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sd1kit.errors import Sd1kitError

SUFFIXES = (".pt", ".bin", ".safetensors")


@dataclass
class Embedding:
    name: str
    path: Path
    vectors: int
    vec: object = None  # torch.Tensor [vectors, width], loaded on demand

    @property
    def short_hash(self) -> str:
        """A1111's `TI hashes` value: first 12 hex of the file's sha256."""
        from sd1kit.formats.hashes import file_hashes

        return file_hashes(self.path).sha256[:12]


@dataclass
class EmbeddingDatabase:
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why
    _by_first_token: dict[int, list[tuple[list[int], str]]] = field(default_factory=dict)

    def add(self, embedding: Embedding, tokenizer) -> None:
        ids = tokenizer([embedding.name], add_special_tokens=False, truncation=False)["input_ids"][0]
        if not ids:
            self.skipped[str(embedding.path)] = "its name has no tokens"
            return
        self.embeddings[embedding.name] = embedding
        entries = [e for e in self._by_first_token.get(ids[0], []) if e[1] != embedding.name] + [(ids, embedding.name)]
        self._by_first_token[ids[0]] = sorted(entries, key=lambda e: len(e[0]), reverse=True)

    def find_at(self, tokens: list[int], position: int) -> tuple[str, int, int] | None:
        for ids, name in self._by_first_token.get(tokens[position], ()):
            if tokens[position:position + len(ids)] == ids:
                return name, self.embeddings[name].vectors, len(ids)
        return None


def _vectors_of(path: Path):
    """The [n, width] tensor of an embedding file, in any of the layouts people have."""
    import torch

    from sd1kit.formats.source import open_source

    source = open_source(path)
    if not source.safe:
        raise Sd1kitError(path, "unsafe pickle: references " + ", ".join(source.unsafe_globals))
    names = list(source.tensors)
    for key in ("emb_params",):
        if key in names:
            return source.get_tensor(key)
    params = [n for n in names if n.startswith("string_to_param.")]
    if params:
        return source.get_tensor(params[0])
    if "clip_l" in names or "clip_g" in names:
        raise Sd1kitError(path, "an SDXL embedding (clip_l/clip_g), not SD1")
    if len(names) == 1:
        return source.get_tensor(names[0])
    raise Sd1kitError(path, "not a textual-inversion embedding (no string_to_param, emb_params or single tensor)")


def load_embedding(path: str | os.PathLike, width: int = 768) -> Embedding:
    path = Path(path)
    vec = _vectors_of(path)
    if vec.ndim == 1:
        vec = vec.unsqueeze(0)
    if vec.ndim != 2 or vec.shape[1] != width:
        raise Sd1kitError(path, f"embedding vectors of shape {list(vec.shape)} do not fit a {width}-wide text encoder")
    return Embedding(path.stem, path, vec.shape[0], vec.float())


def load_embedding_dir(folder: str | os.PathLike, tokenizer, width: int = 768) -> EmbeddingDatabase:
    """Every embedding file under `folder`; files that are not usable are listed in `skipped` with the reason."""
    db = EmbeddingDatabase()
    folder = Path(folder)
    if not folder.is_dir():
        raise Sd1kitError(folder, "embeddings folder does not exist")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix.lower() == ".png":
            db.skipped[str(path)] = "embeddings hidden in PNG images are not read; convert it to .safetensors"
            continue
        if path.suffix.lower() not in SUFFIXES:
            continue
        try:
            db.add(load_embedding(path, width), tokenizer)
        except Sd1kitError as e:
            db.skipped[str(path)] = e.message
    return db
