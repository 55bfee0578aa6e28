"""A1111's png-info, progress, interrupt and skip; and the web page."""

from __future__ import annotations

import time
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sd1kit.server.a1111 import decode_image, encode_png
from sd1kit.server.payloads import ProgressRequest
from sd1kit.server.state import State

router = APIRouter()  # /sdapi/v1/png-info, progress, interrupt, skip
page_router = APIRouter()  # /


@router.post("/sdapi/v1/png-info")
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


@router.get("/sdapi/v1/progress")
async def progress(state: State, http: Request, skip_current_image: bool = False, id_task: str | None = None):
    """A1111's progress: of the job `id_task` names (a force_task_id or a job id) where given, else of the
    caller's own last job while it is queued or running (with several replicas several jobs run at once), else of
    the job running now."""
    job = _progress_job(state, http, id_task)
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


def _progress_job(state, http: Request, id_task: str | None):
    if id_task:
        return state.jobs.find(id_task)
    mine = state.jobs.of_client(http.client.host if http.client else None)
    if mine is not None:
        return None if mine.future.done() else mine
    return state.jobs.current


@router.post("/internal/progress")
async def internal_progress(body: ProgressRequest, state: State):
    """A1111's progress of one task (`modules/progress.py`, what its own page polls): the task is a job's
    `force_task_id` (or its sd1kit job id); the live preview a data URL, sent when it is newer than the client's
    `id_live_preview` (here: the step it was taken at)."""
    job = state.jobs.find(body.id_task) if body.id_task else None
    out = {"active": False, "queued": False, "completed": False, "progress": None, "eta": None,
           "live_preview": None, "id_live_preview": body.id_live_preview, "textinfo": None}
    if job is None:
        return {**out, "textinfo": "Waiting..."}
    if job.state == "queued":
        return {**out, "queued": True, "textinfo": "In queue..."}
    if job.future.done():  # A1111 answers a finished task as an idle one that is completed
        return {**out, "completed": True, "id_live_preview": -1, "textinfo": "Waiting..."}
    fraction = job.step / job.steps if job.steps else 0.0
    elapsed = time.time() - (job.started or time.time())
    out.update(active=True, progress=fraction, eta=elapsed / fraction - elapsed if fraction > 0 else None,
               textinfo=f"Step {job.step}/{job.steps}" if job.steps else "Starting...")
    if body.live_preview and job.preview is not None and job.step > body.id_live_preview:
        from sd1kit.pipeline.images import preview

        out["live_preview"] = "data:image/png;base64," + encode_png(preview(job.preview[:1]))
        out["id_live_preview"] = job.step
    return out


@router.post("/sdapi/v1/interrupt")
async def interrupt(state: State):
    state.jobs.interrupt()
    return {}


@router.post("/sdapi/v1/skip")
async def skip(state: State):
    state.jobs.interrupt()  # one job is one batch here: skipping it is stopping it, keeping its image
    return {}


@page_router.get("/", response_class=HTMLResponse)
async def page():
    return resources.files("sd1kit.server").joinpath("page.html").read_text(encoding="utf-8")
