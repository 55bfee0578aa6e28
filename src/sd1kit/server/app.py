"""The HTTP server: A1111's `/sdapi/v1` API, sd1kit's own job API for the web page, and the page itself.
Handlers never run generation: they enqueue a job and await its future."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from sd1kit import __version__
from sd1kit.errors import Sd1kitError
from sd1kit.server.a1111 import control_units, decode_image, encode_png, generation_request, generation_response
from sd1kit.server.jobs import JobQueue, QueueFull

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
    dtype: str = "fp32"
    model: str | None = None  # a title, name or hash of the model to start with (default: the built-in)


@dataclass
class ServerState:
    config: ServerConfig
    jobs: JobQueue
    model_title: str = BUILTIN_TITLE
    loaded: object = None  # LoadedModel
    options: dict = field(default_factory=dict)

    loaded_title: str | None = None  # the title `loaded` was loaded as

    def folder(self, kind: str) -> Path | None:
        return self.config.models_dir / kind if self.config.models_dir else None

    def find(self, kind: str, name: str, what: str) -> str:
        """A file or folder named `name` (stem or full name) anywhere in models/<kind>, never a client's path."""
        name = safe_name(name, what)
        folder = self.folder(kind)
        for path in sorted(folder.rglob("*")) if folder and folder.is_dir() else []:
            if name in (path.stem, path.name):
                return str(path)
        raise Sd1kitError(what, f"{name!r} is not in the models folder's {kind}/")


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
    if folder and folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES):
            h = file_hashes(path)
            name = str(path.relative_to(folder))
            entries.append({"title": f"{name} [{h.a1111_short}]", "model_name": path.stem, "hash": h.a1111_short,
                            "sha256": h.sha256, "filename": str(path), "config": None})
    return entries


def find_checkpoint(state: ServerState, wanted: str) -> dict:
    wanted = (wanted if wanted.endswith(" [built-in]") else
              safe_name(wanted.split(" [")[0] if " [" in wanted else wanted, "sd_model_checkpoint"))
    for entry in list_checkpoints(state):
        if wanted in (entry["title"], entry["model_name"], entry["hash"], entry["title"].split(" [")[0]):
            return entry
    raise Sd1kitError("sd_model_checkpoint", f"{wanted!r} is not in the models folder")


def _check_prompt_names(request) -> None:
    from sd1kit.prompts.extra_networks import parse_extra_networks

    for text in (request.prompt, request.negative_prompt):
        for net in parse_extra_networks(text)[1]:
            safe_name(net.name, f"<{net.kind}:...>")


def create_app(config: ServerConfig) -> FastAPI:
    app = FastAPI(title="sd1kit", version=__version__,
                  description="An A1111-compatible API for SD1-family models (sd1kit)")
    state = ServerState(config, JobQueue(config.queue_size))
    app.state.sd1kit = state

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if config.auth is not None and not _authorized(request, config.auth):
            return JSONResponse({"error": "authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="sd1kit"'})
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return JSONResponse({"error": f"request body over {MAX_BODY >> 20} MB"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(Sd1kitError)
    async def sd1kit_error(request: Request, e: Sd1kitError):
        return JSONResponse({"error": str(e), "detail": str(e)}, status_code=400)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, e: QueueFull):
        return JSONResponse({"error": str(e), "detail": str(e)}, status_code=429)

    def load(job=None):
        from sd1kit.pipeline.device import pick_device, pick_dtype
        from sd1kit.pipeline.model import load_model

        if state.loaded is None or state.loaded_title != state.model_title:
            entry = find_checkpoint(state, state.model_title)
            device = pick_device(config.device)
            state.loaded = load_model(entry["filename"], device=device, dtype=pick_dtype(config.dtype, device))
            state.loaded_title = state.model_title
        return state.loaded

    if config.model:
        state.model_title = find_checkpoint(state, config.model)["title"]

    def find_controlnet(name: str) -> str:
        return state.find("ControlNet", name.split(" [")[0].strip(), "ControlNet model")

    def find_vae(name) -> str | None:
        return None if not name or name in ("Automatic", "None") else state.find("VAE", str(name), "sd_vae")

    def generation_job(payload: dict, img2img: bool):
        request, images = generation_request(payload, img2img)
        _check_prompt_names(request)
        units = control_units(payload, find_controlnet)
        vae = (payload.get("override_settings") or {}).get("sd_vae") or state.options.get("sd_vae")
        request = request.with_(vae=find_vae(vae))
        folder = embeddings_folder()
        request = request.with_(init_image=images.get("init"), mask_image=images.get("mask"), controlnets=units,
                                lora_dir=str(state.folder("Lora")) if state.folder("Lora") else None,
                                embeddings_dir=str(folder) if folder else None)
        wanted = (payload.get("override_settings") or {}).get("sd_model_checkpoint")

        def work(job):
            from sd1kit.pipeline.generate import generate

            if wanted:
                state.model_title = find_checkpoint(state, wanted)["title"]
            model = load(job)
            job.steps = request.steps * request.batch_count * (2 if request.enable_hr else 1)

            def progress(i, sigma, latent):
                job.step += 1
                job.preview = latent

            result = generate(request, model, callback=progress, should_stop=lambda: job.stop)
            return generation_response(payload, result, request)
        return work

    async def run(kind: str, work):
        job = state.jobs.submit(kind, work)
        return await asyncio.wrap_future(job.future)

    @app.post("/sdapi/v1/txt2img")
    async def txt2img(payload: dict):
        return await run("txt2img", generation_job(payload, img2img=False))

    @app.post("/sdapi/v1/img2img")
    async def img2img(payload: dict):
        return await run("img2img", generation_job(payload, img2img=True))

    @app.post("/sdapi/v1/png-info")
    async def png_info(payload: dict):
        from sd1kit.metadata.containers import Containers
        from sd1kit.metadata.readers import read_found

        image = decode_image(payload.get("image", ""), "image")
        found = Containers("<upload>", image.format, image.size, image.mode,
                           {k: v for k, v in image.info.items() if isinstance(v, str)})
        info = read_found(found)
        text = info.to_infotext() if info.tool else ""
        return {"info": text, "items": {k: v for k, v in image.info.items() if isinstance(v, str)},
                "parameters": {"Prompt": info.prompt, "Negative prompt": info.negative_prompt, **info.parameters},
                "tool": info.tool}

    @app.get("/sdapi/v1/progress")
    async def progress(skip_current_image: bool = False):
        job = state.jobs.current
        if job is None:
            return {"progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
                    "state": {"skipped": False, "interrupted": False, "job": "", "job_count": state.jobs.pending(),
                              "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}}
        fraction = job.step / job.steps if job.steps else 0.0
        elapsed = time.time() - (job.started or time.time())
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        image = None
        if not skip_current_image and job.preview is not None:
            from sd1kit.pipeline.images import preview

            image = encode_png(preview(job.preview[:1]))
        return {"progress": fraction, "eta_relative": eta, "current_image": image, "textinfo": None,
                "state": {"skipped": False, "interrupted": job.stop, "job": job.id,
                          "job_count": state.jobs.pending() + 1, "job_timestamp": str(int(job.started or 0)),
                          "job_no": 0, "sampling_step": job.step, "sampling_steps": job.steps}}

    @app.post("/sdapi/v1/interrupt")
    async def interrupt():
        state.jobs.interrupt()
        return {}

    @app.post("/sdapi/v1/skip")
    async def skip():
        state.jobs.interrupt()  # one job is one batch here: skipping it is stopping it, keeping its image
        return {}

    @app.get("/sdapi/v1/sd-models")
    async def sd_models():
        return await asyncio.to_thread(list_checkpoints, state)

    @app.post("/sdapi/v1/refresh-checkpoints")
    async def refresh_checkpoints():
        return {}

    @app.get("/sdapi/v1/sd-vae")
    async def sd_vae():
        folder = state.folder("VAE")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".pt", ".ckpt", ".safetensors")) \
            if folder and folder.is_dir() else []
        return [{"model_name": p.name, "filename": str(p)} for p in files]

    @app.get("/sdapi/v1/loras")
    async def loras():
        from sd1kit.adapters.library import SUFFIXES

        folders = [f for f in (state.folder("Lora"), state.folder("LyCORIS")) if f and f.is_dir()]
        files = sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in SUFFIXES)
        return [{"name": p.stem, "alias": p.stem, "path": str(p), "metadata": {}} for p in files]

    @app.post("/sdapi/v1/refresh-loras")
    async def refresh_loras():
        return {}

    @app.get("/sdapi/v1/embeddings")
    async def embeddings():
        folder = embeddings_folder()
        if folder is None:
            return {"loaded": {}, "skipped": {}}

        def scan():
            from sd1kit.models.tokenizer import clip_tokenizer
            from sd1kit.prompts.embeddings import load_embedding_dir

            width = state.loaded.modules.text_encoder_config.hidden_size if state.loaded is not None else 768
            db = load_embedding_dir(folder, clip_tokenizer(), width=width)
            loaded = {name: {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": width,
                             "vectors": e.vectors} for name, e in db.embeddings.items()}
            return {"loaded": loaded, "skipped": {Path(k).stem: {"reason": v} for k, v in db.skipped.items()}}
        return await asyncio.to_thread(scan)

    def embeddings_folder() -> Path | None:
        """A1111's `embeddings/` beside `models/` (or $SD1KIT_HOME/embeddings)."""
        candidates = [config.models_dir.parent / "embeddings"] if config.models_dir else []
        candidates.append(Path(os.environ.get("SD1KIT_HOME", ".")) / "embeddings")
        return next((c for c in candidates if c.is_dir()), None)

    @app.get("/sdapi/v1/samplers")
    async def samplers():
        from sd1kit.sampling.registry import SAMPLERS

        return [{"name": s.name, "aliases": [s.id, *s.aliases], "options": {}} for s in SAMPLERS]

    @app.get("/sdapi/v1/schedulers")
    async def schedulers():
        from sd1kit.sampling.registry import SCHEDULES

        return [{"name": s.id, "label": s.name, "aliases": list(s.aliases), "default_rho": -1,
                 "need_inner_model": s.needs_model} for s in SCHEDULES]

    @app.get("/sdapi/v1/upscalers")
    async def upscalers():
        from sd1kit.pipeline.hires import LATENT_UPSCALERS, PIXEL_UPSCALERS

        return [{"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
                for n in [*LATENT_UPSCALERS, *PIXEL_UPSCALERS]]

    @app.get("/sdapi/v1/options")
    async def get_options():
        return {"sd_model_checkpoint": state.model_title, "sd_vae": "Automatic", "CLIP_stop_at_last_layers": 1,
                "eta_noise_seed_delta": 0, "randn_source": "GPU", **state.options}

    @app.post("/sdapi/v1/options")
    async def set_options(payload: dict):
        if "sd_model_checkpoint" in payload:
            entry = find_checkpoint(state, str(payload["sd_model_checkpoint"]))

            def switch(job):
                state.model_title = entry["title"]
                load(job)
                return None
            await run("options", switch)
        if "sd_vae" in payload:
            find_vae(payload["sd_vae"])  # refuse a name that is not there, or is a path
        state.options.update({k: v for k, v in payload.items() if k != "sd_model_checkpoint"})
        return None

    @app.get("/sdapi/v1/memory")
    async def memory():
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return {"ram": {"total": total, "used": rss, "peak": rss}, "cuda": {"error": "no CUDA device"}}

    # --- sd1kit's own job API (what the page uses): submit, poll, cancel ---
    @app.post("/sd1kit/v1/jobs")
    async def submit(payload: dict):
        kind = payload.get("kind", "txt2img")
        if kind not in ("txt2img", "img2img"):
            raise Sd1kitError("kind", "txt2img or img2img")
        job = state.jobs.submit(kind, generation_job(payload.get("payload") or {}, kind == "img2img"))
        return {"id": job.id}

    @app.get("/sd1kit/v1/jobs/{job_id}")
    async def job_status(job_id: str):
        job = state.jobs.jobs.get(job_id)
        if job is None:
            return JSONResponse({"error": f"no such job {job_id!r}"}, status_code=404)
        out = job.as_json()
        if job.future.done():
            error = job.future.exception()
            out["error"] = str(error) if error else None
            out["result"] = None if error else job.future.result()
        elif job.preview is not None:
            from sd1kit.pipeline.images import preview

            out["preview"] = encode_png(preview(job.preview[:1]))
        return out

    @app.delete("/sd1kit/v1/jobs/{job_id}")
    async def cancel(job_id: str):
        return state.jobs.cancel(job_id).as_json()

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files("sd1kit.server").joinpath("page.html").read_text(encoding="utf-8")

    return app


def _authorized(request: Request, auth: tuple[str, str]) -> bool:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, auth[0]) and secrets.compare_digest(password, auth[1])


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_bind(host: str, auth, insecure: bool) -> None:
    if host not in LOOPBACK and auth is None and not insecure:
        raise Sd1kitError("--host", f"listening on {host} needs --auth user:pass (or --insecure-no-auth, which lets "
                                    "anyone on the network run the model)")
