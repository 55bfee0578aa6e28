"""The server's state: its configuration, the job queue, the loaded model, and the lookups of names in the models
folder (checkpoints, VAEs, ControlNets, embeddings). Routes reach it through `request.app.state.sd1kit`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from sd1kit.errors import Sd1kitError
from sd1kit.server.jobs import JobQueue

BUILTIN_TITLE = "sd1kit-demo [built-in]"  # the default model (sd1kit.demo)
MODEL_SUFFIXES = (".safetensors", ".ckpt")
MAX_BODY = 64 << 20
_UNSAFE_NAME = re.compile(r"(^[/\\~])|(\.\.)|([/\\])|(^[A-Za-z]:)|%2f|%5c|%2e%2e", re.IGNORECASE)


@dataclass
class ServerConfig:
    models_dir: Path | None = None  # the A1111 layout: Stable-diffusion/, VAE/, Lora/, LyCORIS/, ControlNet/
    auth: tuple[str, str] | None = None
    queue_size: int = 16
    device: str = "cpu"  # or "auto"
    dtype: str | None = None  # None: auto (pipeline.runtime)
    model: str | None = None  # a title, name or hash of the model to start with (default: the built-in)
    backend: str | None = None  # None: auto
    low_memory: bool = False
    int8: bool = False
    ray: str | None = None  # --ray: generation on Ray Serve replicas (server/replicas.py)
    replicas: int = 1


@dataclass
class ServerState:
    config: ServerConfig
    jobs: JobQueue
    model_title: str = BUILTIN_TITLE
    loaded: object = None  # LoadedModel
    options: dict = field(default_factory=dict)

    loaded_title: str | None = None  # the title `loaded` was loaded as
    replicas: object = None  # server.replicas.Replicas under --ray

    def folder(self, kind: str) -> Path | None:
        return self.config.models_dir / kind if self.config.models_dir else None

    def files(self, kind: str, suffixes) -> list[Path]:
        """The files under models/<kind> (recursively) with one of `suffixes`, sorted; none without the folder."""
        folder = self.folder(kind)
        if not folder or not folder.is_dir():
            return []
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)

    def find(self, kind: str, name: str, what: str, suffixes=MODEL_SUFFIXES + (".pt",), folders: bool = False) -> str:
        """A file named `name` (stem or full name) anywhere in models/<kind> with one of `suffixes` (as the
        listings show them; with `folders`, a diffusers folder too), never a client's path."""
        name = safe_name(name, what)
        folder = self.folder(kind)
        for path in sorted(folder.rglob("*")) if folder and folder.is_dir() else []:
            usable = (path.is_file() and path.suffix.lower() in suffixes) or (
                folders and path.is_dir() and (path / "config.json").is_file())
            if usable and name in (path.stem, path.name):
                return str(path)
        raise Sd1kitError(what, f"{name!r} is not in the models folder's {kind}/")

    def find_controlnet(self, name: str) -> str:
        return self.find("ControlNet", name.split(" [")[0].strip(), "ControlNet model", MODEL_SUFFIXES + (".pth",),
                         folders=True)

    def find_vae(self, name) -> str | None:
        return None if not name or name in ("Automatic", "None") else self.find("VAE", str(name), "sd_vae")

    def embeddings_folder(self) -> Path | None:
        """A1111's `embeddings/` beside `models/` (or $SD1KIT_HOME/embeddings)."""
        candidates = [self.config.models_dir.parent / "embeddings"] if self.config.models_dir else []
        candidates.append(Path(os.environ.get("SD1KIT_HOME", ".")) / "embeddings")
        return next((c for c in candidates if c.is_dir()), None)

    def runtime(self, request=None):
        """How the server computes (its --device / --dtype / --backend); `request`: a job whose modifiers only
        torch runs moves `auto` to torch for that job."""
        from sd1kit.pipeline.runtime import given_runtime, resolve_runtime

        return resolve_runtime(**given_runtime(self.config), source="serve", request=request)

    def load(self, job=None, request=None):
        """The model titled `model_title` on the runtime `request` needs, loaded once (run on the job queue's
        worker)."""
        from sd1kit.pipeline.model import load_model

        runtime = self.runtime(request)
        wanted = (self.model_title, runtime.label if runtime.backend != "auto" else None)
        if self.loaded is None or self.loaded_title != wanted[0] or (
                wanted[1] and self.loaded.runtime and self.loaded.runtime.label != wanted[1]):
            entry = find_checkpoint(self, self.model_title)
            self.loaded = load_model(entry["filename"], runtime=runtime)
            self.loaded_title = self.model_title
        return self.loaded

    async def run(self, kind: str, work, task: str | None = None, client: str | None = None):
        """Enqueue `work` (known to /internal/progress as `task`, where given) and await its result."""
        job = self.jobs.submit(kind, work, task, client)
        return await asyncio.wrap_future(job.future)


async def get_state(request: Request) -> ServerState:
    return request.app.state.sd1kit


State = Annotated[ServerState, Depends(get_state)]


def safe_name(value: str, what: str) -> str:
    """A client-given model / VAE / LoRA name: a name inside the configured folders, never a path."""
    if not isinstance(value, str) or not value.strip() or _UNSAFE_NAME.search(value) or "\0" in value:
        raise Sd1kitError(what, f"{value!r} is not a plain name inside the models folder")
    return value.strip()


def list_checkpoints(state: ServerState) -> list[dict]:
    from sd1kit.formats.hashes import file_hashes

    from sd1kit.demo import DEMO_NAMES, demo_model

    entries = []
    for name, path in ((n, demo_model(n)) for n in DEMO_NAMES):
        h = file_hashes(path)
        entries.append({"title": f"{name} [built-in]", "model_name": name, "hash": h.a1111_short, "sha256": h.sha256,
                        "filename": str(path), "config": None})
    folder = state.folder("Stable-diffusion")
    for path in state.files("Stable-diffusion", MODEL_SUFFIXES):
        try:
            h = file_hashes(path)
        except OSError as e:  # a broken link, an unreadable file: one warning line, the others are listed
            print(f"sd1kit: warning: {path}: not listed ({e.strerror or e})", file=sys.stderr)
            continue
        name = str(path.relative_to(folder))  # A1111's model_name: the relative name, "/" as "_", no suffix
        model_name = str(Path(name).with_suffix("")).replace("/", "_").replace("\\", "_")
        entries.append({"title": f"{name} [{h.a1111_short}]", "model_name": model_name, "hash": h.a1111_short,
                        "sha256": h.sha256, "filename": str(path), "config": None})
    return entries


def find_checkpoint(state: ServerState, wanted: str) -> dict:
    """A listed checkpoint by its title (a subfolder's `sub/x.safetensors [hash]` included, as clients send back
    what /sd-models lists), name, hash or title without the hash; only listed files match, so no name is a path."""
    if not isinstance(wanted, str) or not wanted.strip():
        raise Sd1kitError("sd_model_checkpoint", f"{wanted!r} is not a checkpoint name")
    wanted = wanted.strip()
    bare = wanted.split(" [")[0] if " [" in wanted else wanted
    for entry in list_checkpoints(state):
        title = entry["title"].split(" [")[0]
        names = (entry["title"], entry["model_name"], entry["hash"])
        if wanted in names or bare in (title, str(Path(title).with_suffix(""))):
            return entry
    safe_name(bare, "sd_model_checkpoint")  # a path is said to be one
    raise Sd1kitError("sd_model_checkpoint", f"{wanted!r} is not in the models folder")
