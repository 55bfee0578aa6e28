"""Generation: A1111's txt2img / img2img, and sd1kit's own job API (what the page uses: submit, poll, cancel).
Handlers never run generation: they enqueue a job and await its future (or hand back its id)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import traceback

from fastapi import APIRouter, HTTPException

from sd1kit.errors import Sd1kitError
from sd1kit.server.a1111 import control_units, encode_png, generation_request, generation_response
from sd1kit.server.state import ServerState, State, find_checkpoint, safe_name

router = APIRouter()  # /sdapi/v1/txt2img, /sdapi/v1/img2img
jobs_router = APIRouter()  # /sd1kit/v1/jobs


def _body_schema(kind: str) -> dict:
    """The payload's OpenAPI schema, generated from the option table."""
    from sd1kit.pipeline.option_surfaces import json_schema

    return {"requestBody": {"content": {"application/json": {"schema": json_schema(kind)}}, "required": True}}


def _check_prompt_names(request) -> None:
    from sd1kit.prompts.extra_networks import parse_extra_networks

    for text in (request.prompt, request.negative_prompt):
        for net in parse_extra_networks(text)[1]:
            safe_name(net.name, f"<{net.kind}:...>")


def generation_job(state: ServerState, payload: dict, img2img: bool):
    """Check `payload` now (a bad one is a 400, not a failed job) and return the job's work: plan, then run."""
    request, images = generation_request(payload, img2img)
    _check_prompt_names(request)
    units = control_units(payload, state.find_controlnet)
    vae = (payload.get("override_settings") or {}).get("sd_vae") or state.options.get("sd_vae")
    request = request.with_(vae=state.find_vae(vae))
    folder = state.embeddings_folder()
    request = request.with_(init_image=images.get("init"), mask_image=images.get("mask"), controlnets=units,
                            lora_dir=str(state.folder("Lora")) if state.folder("Lora") else None,
                            embeddings_dir=str(folder) if folder else None)
    wanted = (payload.get("override_settings") or {}).get("sd_model_checkpoint")

    def work(job):
        from sd1kit.pipeline.generate import run
        from sd1kit.pipeline.plan import plan

        if wanted:
            state.model_title = find_checkpoint(state, wanted)["title"]
        the_plan = plan(request, state.load(job))
        if payload.get("sd1kit_dry_run"):
            return {"plan": the_plan.as_json()}
        job.steps = sum(p.steps for p in the_plan.passes) * request.batch_count

        def progress(i, sigma, latent):
            job.step += 1
            job.preview = latent

        result = run(the_plan, callback=progress, should_stop=lambda: job.stop)
        return generation_response(payload, result, the_plan.request)
    return released(work)


def released(work):
    """`work`, giving its memory back when it fails: the error keeps no frames of the failed run (their tensors
    would live as long as the job's future is kept), then a collection and `malloc_trim` hand the freed heap
    back to the system. An unexpected error's traceback is logged first."""
    def run_released(job):
        try:
            return work(job)
        except BaseException as e:  # noqa: BLE001 - re-raised below, without its frames
            error = e
        if not isinstance(error, Sd1kitError):
            traceback.print_exception(error, file=sys.stderr)
        forget_frames(error)
        give_memory_back()
        raise error
    return run_released


def forget_frames(error: BaseException) -> None:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def give_memory_back() -> None:
    """gc, then glibc's `malloc_trim(0)` (where there is a glibc): freed arenas go back to the system."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


@router.post("/sdapi/v1/txt2img", openapi_extra=_body_schema("txt2img"))
async def txt2img(payload: dict, state: State):
    return await state.run("txt2img", generation_job(state, payload, img2img=False))


@router.post("/sdapi/v1/img2img", openapi_extra=_body_schema("img2img"))
async def img2img(payload: dict, state: State):
    return await state.run("img2img", generation_job(state, payload, img2img=True))


@jobs_router.post("/sd1kit/v1/jobs")
async def submit(payload: dict, state: State):
    kind = payload.get("kind", "txt2img")
    if kind not in ("txt2img", "img2img"):
        raise Sd1kitError("kind", "txt2img or img2img")
    job = state.jobs.submit(kind, generation_job(state, payload.get("payload") or {}, kind == "img2img"))
    return {"id": job.id}


@jobs_router.get("/sd1kit/v1/jobs/{job_id}")
async def job_status(job_id: str, state: State):
    job = state.jobs.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no such job {job_id!r}")
    out = job.as_json()
    if job.future.done():
        error = job.future.exception()
        out["error"] = str(error) if error else None
        out["result"] = None if error else job.future.result()
    elif job.preview is not None:
        from sd1kit.pipeline.images import preview

        out["preview"] = encode_png(preview(job.preview[:1]))
    return out


@jobs_router.delete("/sd1kit/v1/jobs/{job_id}")
async def cancel(job_id: str, state: State):
    return state.jobs.cancel(job_id).as_json()
