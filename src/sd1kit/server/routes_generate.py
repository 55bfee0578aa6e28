"""Generation: A1111's txt2img / img2img, and sd1kit's own job API (what the page uses: submit, poll, cancel).
Handlers never run generation: they enqueue a job and await its future (or hand back its id)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
import traceback

from fastapi import APIRouter, HTTPException

from sd1kit.errors import Sd1kitError
from sd1kit.server.a1111 import (
    control_units, encode_png, generation_request, generation_response, payload_images, script_warnings)
from sd1kit.adapters.library import models_lora_dir
from sd1kit.server.payloads import Img2ImgPayload, JobRequest, Txt2ImgPayload, validated
from sd1kit.server.state import ServerState, State, find_checkpoint, safe_name

router = APIRouter()  # /sdapi/v1/txt2img, /sdapi/v1/img2img
jobs_router = APIRouter()  # /sd1kit/v1/jobs


def _check_prompt_names(state: ServerState, request) -> None:
    """Every extra-network name in every prompt field (the hires ones too) a plain name of a file inside the
    folders (LoRA / LyCORIS in Lora/ and LyCORIS/, hypernetworks in hypernetworks/), before a job exists."""
    from sd1kit.adapters.library import find_adapter, request_folders
    from sd1kit.prompts.extra_networks import parse_extra_networks

    fields = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
    for field, text in ((f, getattr(request, f)) for f in fields):
        for net in parse_extra_networks(text or "")[1]:
            what = f"{field}: <{net.kind}:...>"
            name = safe_name(net.name, what)
            try:
                if net.kind in ("lora", "lyco"):
                    find_adapter(name, request_folders(request.lora_dir), request.lora_hashes.get(name))
                elif net.kind == "hypernet":
                    state.find("hypernetworks", name, what)
            except Sd1kitError as e:
                raise Sd1kitError(what, e.message) from None


def generation_job(state: ServerState, payload, img2img: bool):
    """Check `payload` now (a bad one is a 400 / 422, not a failed job) and return the job's work: plan, run.
    The server's stored options apply under the payload's `override_settings`, as they are when the job runs;
    with `override_settings_restore_afterwards` false, the overrides stay set afterwards (the model among them),
    as in A1111, else the model switched to for this job is switched back. Decodes and hashes: call it off the
    event loop (`submitted`)."""
    from sd1kit.server.routes_models import check_option_values, store_options

    payload = validated("img2img" if img2img else "txt2img", payload)
    images = payload_images(payload, img2img)
    units = control_units(payload, state.find_controlnet)
    overrides = payload.get("override_settings") or {}
    wanted = overrides.get("sd_model_checkpoint")
    wanted = find_checkpoint(state, wanted)["title"] if wanted else None
    dry = bool(payload.get("sd1kit_dry_run"))
    keep = payload.get("override_settings_restore_afterwards") is False and not dry
    if keep:  # they will be kept as the stored options are: the same limits
        check_option_values(overrides, state)

    def resolved(settings: dict):
        request, warnings = generation_request(payload, img2img, settings)
        if payload.get("styles"):
            from sd1kit.server.styles import apply_styles, read_styles

            fields = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
            styled = apply_styles({f: getattr(request, f) for f in fields}, payload["styles"], read_styles(state))
            request = request.given("api", **styled)
        folder = state.embeddings_folder()
        request = request.with_(vae=state.find_vae(overrides.get("sd_vae") or settings.get("sd_vae")),
                                init_image=images.get("init"), mask_image=images.get("mask"), controlnets=units,
                                lora_dir=models_lora_dir(state.config.models_dir),
                                embeddings_dir=str(folder) if folder else None)
        _check_prompt_names(state, request)
        return request, warnings + script_warnings(payload)

    submitted = dict(state.options)
    checked = resolved(submitted)

    def work(job):
        from sd1kit.pipeline.generate import run
        from sd1kit.pipeline.plan import plan

        request, warnings = checked if state.options == submitted else resolved(dict(state.options))
        previous = state.model_title
        if wanted:
            state.model_title = wanted
        done = False
        try:
            the_plan = plan(request, state.load(job))
            if dry:
                answer = {"plan": the_plan.as_json()}
            else:
                job.steps = sum(p.steps for p in the_plan.passes) * request.batch_count

                def progress(i, sigma, latent):
                    job.step += 1
                    job.preview = latent

                result = run(the_plan, callback=progress, should_stop=lambda: job.stop)
                answer = generation_response(payload, result, the_plan.request,
                                             warnings + (store_options(state, overrides) if keep else []))
            done = True
        finally:
            if not (done and keep):
                state.model_title = previous
        return answer
    return released(work)


async def submitted(state: ServerState, kind: str, payload, task: str | None = None):
    """A generation job checked off the event loop (decoding, hashing) and run; a full queue is said before any
    decoding."""
    state.jobs.check_room()
    work = await asyncio.to_thread(generation_job, state, payload, kind == "img2img")
    return await state.run(kind, work, task)


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


@router.post("/sdapi/v1/txt2img")
async def txt2img(payload: Txt2ImgPayload, state: State):
    return await submitted(state, "txt2img", payload, payload.force_task_id)


@router.post("/sdapi/v1/img2img")
async def img2img(payload: Img2ImgPayload, state: State):
    return await submitted(state, "img2img", payload, payload.force_task_id)


@jobs_router.post("/sd1kit/v1/jobs")
async def submit(body: JobRequest, state: State):
    kind = body.kind
    payload = validated(kind, body.payload, prefix=("body", "payload"))
    state.jobs.check_room()
    work = await asyncio.to_thread(generation_job, state, payload, kind == "img2img")
    job = state.jobs.submit(kind, work, payload.get("force_task_id"))
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
