"""Generation: A1111's txt2img / img2img, and sd1kit's own job API (what the page uses: submit, poll, cancel).
Handlers never run generation: they enqueue a job and await its future (or hand back its id)."""

from __future__ import annotations

import asyncio
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable

from fastapi import APIRouter, HTTPException, Request

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.device import trim_heap
from sd1kit.server.a1111 import (
    PROMPTS, control_units, encode_png, generation_request, generation_response, payload_images, script_warnings)
from sd1kit.adapters.hypernetwork import hypernetwork_folder
from sd1kit.adapters.library import models_lora_dir
from sd1kit.install.place import models_root
from sd1kit.server.payloads import Img2ImgPayload, JobRequest, Txt2ImgPayload, validated
from sd1kit.server.state import ServerState, State, find_checkpoint, safe_name

router = APIRouter()  # /sdapi/v1/txt2img, /sdapi/v1/img2img
jobs_router = APIRouter()  # /sd1kit/v1/jobs


def _check_prompt_names(state: ServerState, request) -> None:
    """Every extra-network name in every prompt field (the hires ones too) a plain name of a file inside the
    folders (LoRA / LyCORIS in Lora/ and LyCORIS/, hypernetworks in hypernetworks/), before a job exists."""
    from sd1kit.adapters.hypernetwork import find_hypernetwork
    from sd1kit.adapters.library import find_adapter, request_folders
    from sd1kit.prompts.extra_networks import parse_extra_networks

    for where in PROMPTS:
        for net in parse_extra_networks(getattr(request, where) or "")[1]:
            what = f"{where}: <{net.kind}:...>"
            name = safe_name(net.name, what)
            try:
                if net.kind in ("lora", "lyco"):
                    find_adapter(name, request_folders(request.lora_dir), request.lora_hashes.get(name))
                elif net.kind == "hypernet":
                    find_hypernetwork(name, request.hypernetwork_dir, request.hypernet_hashes.get(name))
            except Sd1kitError as e:
                raise Sd1kitError(what, e.message) from None


def generation_job(state: ServerState, payload, img2img: bool) -> Callable:
    """Check `payload` now (a bad one is a 400 / 422, not a failed job) and return the job's work (`GenerationJob`,
    run as `released`). Decodes and hashes: call it off the event loop (`submitted`)."""
    from sd1kit.server.routes_models import check_option_values

    payload = validated("img2img" if img2img else "txt2img", payload)
    overrides = payload.get("override_settings") or {}
    wanted = overrides.get("sd_model_checkpoint")
    dry = bool(payload.get("sd1kit_dry_run"))
    job = GenerationJob(state, payload, img2img, payload_images(payload, img2img),
                        control_units(payload, state.find_controlnet), overrides,
                        find_checkpoint(state, wanted)["title"] if wanted else None, dry,
                        payload.get("override_settings_restore_afterwards") is False and not dry)
    if job.keep:  # they will be kept as the stored options are: the same limits
        check_option_values(overrides, state)
    job.submitted = dict(state.options)
    job.checked = job.resolved(job.submitted)
    return released(job)


@dataclass
class GenerationJob:
    """One txt2img / img2img job: its checked payload, images and units, and what it does to the server's state.
    The stored options apply under the payload's `override_settings` as they are when the job runs; with
    `override_settings_restore_afterwards` false the overrides stay set afterwards (the model among them), as in
    A1111, else the model switched to for this job is switched back."""

    state: ServerState
    payload: dict
    img2img: bool
    images: dict
    units: list
    overrides: dict
    wanted: str | None  # the checkpoint title override_settings asks for
    dry: bool
    keep: bool
    submitted: dict = field(default_factory=dict)  # the stored options when it was checked
    checked: tuple = ()  # (request, warnings) with them

    def resolved(self, settings: dict):
        """(the GenerationRequest, the payload's warnings) with `settings` as the stored options."""
        state, payload = self.state, self.payload
        request, warnings = generation_request(payload, self.img2img, settings, checked=True)
        if payload.get("styles"):
            from sd1kit.server.styles import apply_styles, read_styles

            styled = apply_styles({f: getattr(request, f) for f in PROMPTS}, payload["styles"], read_styles(state))
            request = request.given("api", **styled)
        folder = state.embeddings_folder()
        request = request.with_(vae=state.find_vae(self.overrides.get("sd_vae") or settings.get("sd_vae")),
                                init_image=self.images.get("init"), mask_image=self.images.get("mask"),
                                controlnets=self.units, lora_dir=models_lora_dir(state.config.models_dir),
                                hypernetwork_dir=str(hypernetwork_folder(state.config.models_dir)),
                                upscaler_models_dir=str(models_root(state.config.models_dir)),
                                embeddings_dir=str(folder) if folder else None)
        _check_prompt_names(state, request)
        return request, warnings + script_warnings(payload)

    def __call__(self, job):
        from sd1kit.pipeline.generate import run
        from sd1kit.pipeline.plan import plan
        from sd1kit.server.routes_models import store_options

        state = self.state
        request, warnings = self.checked if state.options == self.submitted else self.resolved(dict(state.options))
        previous = state.model_title
        state.model_title = self.wanted or previous
        done = False
        try:
            if state.replicas is not None:
                result, the_request = self._on_replica(job, request)
                if isinstance(result, dict):
                    return result
                kept = store_options(state, self.overrides) if self.keep else []
                done = True
                return generation_response(self.payload, result, the_request, warnings + kept)
            the_plan = plan(request, state.load(job, request))
            if self.dry:
                return {"plan": the_plan.as_json()}
            job.steps = sum(p.steps for p in the_plan.passes) * request.batch_count

            def progress(i, sigma, latent):
                job.step += 1
                job.preview = latent

            result = run(the_plan, callback=progress, should_stop=lambda: job.stop)
            kept = store_options(state, self.overrides) if self.keep else []
            done = True
            return generation_response(self.payload, result, the_plan.request, warnings + kept)
        finally:
            if not (done and self.keep):
                state.model_title = previous


    def _on_replica(self, job, request):
        """(Result, request) from the replica the job is routed to (or ({"plan": ...}, request) for a dry run):
        the checkpoint named by its file and hash, so that every replica loads the same."""
        entry = find_checkpoint(self.state, self.state.model_title)
        request = request.with_(model=entry["filename"])
        kind, value = self.state.replicas.run(job, request, entry["sha256"], self.dry)
        return ({"plan": value} if kind == "plan" else value), request


async def submitted(state: ServerState, kind: str, payload, task: str | None = None, client: str | None = None):
    """A generation job checked off the event loop (decoding, hashing) and run; a full queue is said before any
    decoding."""
    state.jobs.check_room()
    work = await asyncio.to_thread(generation_job, state, payload, kind == "img2img")
    return await state.run(kind, work, task, client)


def _client(http: Request) -> str | None:
    """The caller, as /sdapi/v1/progress knows it (its address: A1111's clients send no id of their own)."""
    return http.client.host if http.client else None


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
        trim_heap()
        raise error
    return run_released


def forget_frames(error: BaseException) -> None:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


@router.post("/sdapi/v1/txt2img")
async def txt2img(payload: Txt2ImgPayload, state: State, http: Request):
    return await submitted(state, "txt2img", payload, payload.force_task_id, _client(http))


@router.post("/sdapi/v1/img2img")
async def img2img(payload: Img2ImgPayload, state: State, http: Request):
    return await submitted(state, "img2img", payload, payload.force_task_id, _client(http))


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
