"""A1111's listings and settings: models, VAEs, LoRAs, embeddings, samplers, schedulers, upscalers, options, memory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import json

from fastapi import APIRouter, HTTPException

from sd1kit.server.state import State, find_checkpoint, list_checkpoints

router = APIRouter()
MAX_OPTION_VALUE = 64 << 10  # bytes of one option's value, as JSON (A1111's largest settings are short lists)
MAX_OPTION_KEYS = 1024  # options kept (A1111 has about 600)
MAX_KEY = 128


@router.get("/sdapi/v1/sd-models")
async def sd_models(state: State):
    return await asyncio.to_thread(list_checkpoints, state)


@router.post("/sdapi/v1/refresh-checkpoints")
async def refresh_checkpoints(state: State):
    """The folder is read on every listing; a refresh hashes new or changed files now (A1111 answers null), so
    the next /sd-models is quick."""
    await asyncio.to_thread(list_checkpoints, state)
    return None


@router.get("/sdapi/v1/sd-vae")
async def sd_vae(state: State):
    files = state.files("VAE", (".pt", ".ckpt", ".safetensors"))
    return [{"model_name": p.name, "filename": str(p)} for p in files]


@router.get("/sdapi/v1/loras")
async def loras(state: State):
    from sd1kit.adapters.library import SUFFIXES

    files = sorted(state.files("Lora", SUFFIXES) + state.files("LyCORIS", SUFFIXES))
    return [{"name": p.stem, "alias": p.stem, "path": str(p), "metadata": {}} for p in files]


@router.post("/sdapi/v1/refresh-loras")
async def refresh_loras():
    """Lora/ and LyCORIS/ are read on every listing and every prompt: nothing to refresh (A1111 answers null)."""
    return None


@router.get("/sdapi/v1/embeddings")
async def embeddings(state: State):
    folder = state.embeddings_folder()
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


@router.get("/sdapi/v1/samplers")
async def samplers():
    from sd1kit.sampling.registry import SAMPLERS

    return [{"name": s.name, "aliases": [s.id, *s.aliases], "options": {}} for s in SAMPLERS]


@router.get("/sdapi/v1/schedulers")
async def schedulers():
    from sd1kit.sampling.registry import SCHEDULES

    return [{"name": s.id, "label": s.name, "aliases": list(s.aliases), "default_rho": -1,
             "need_inner_model": s.needs_model} for s in SCHEDULES]


@router.get("/sdapi/v1/upscalers")
async def upscalers(state: State):
    """A1111's picture upscalers (the latent ones are /sdapi/v1/latent-upscale-modes, as in A1111): None, Lanczos,
    Nearest, then the model upscalers installed in the models folder's ESRGAN/, RealESRGAN/, SwinIR/, DAT/ ...,
    named as A1111 names them."""
    from sd1kit.pipeline.upscale import UPSCALERS
    from sd1kit.upscalers import KINDS, installed_upscalers

    listed = [{"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4} for n in UPSCALERS]
    models = installed_upscalers(state.config.models_dir)
    return listed + [{"name": u.name, "model_name": KINDS[u.folder].model_name or u.name, "model_path": str(u.path),
                      "model_url": None, "scale": u.listed_scale} for u in models]


def option_defaults() -> dict:
    """A1111's settings that the option table has (`override_settings.X` rows), at their defaults."""
    from sd1kit.pipeline.option_surfaces import api_fields
    from sd1kit.pipeline.options import OPTIONS

    out = {"CLIP_stop_at_last_layers": 1}  # the clip-skip row's default is "the model's", which A1111 shows as 1
    for option in OPTIONS:
        if isinstance(option.api, str) and option.api.startswith("override_settings.") and option.default is not None:
            out.update(api_fields(option, option.default)["override_settings"])
    return out


@router.get("/sdapi/v1/options")
async def get_options(state: State):
    return {"sd_model_checkpoint": state.model_title, "sd_vae": "Automatic", **option_defaults(), **state.options}


def check_option_values(payload: dict, state) -> None:
    """Refuse, before anything is stored, an option name that is not a short name, a value over
    MAX_OPTION_VALUE bytes (413: it would be kept and sent back by every GET), or more options than are kept."""
    for key, value in payload.items():
        if not key or len(key) > MAX_KEY or not key.isprintable():
            raise HTTPException(400, f"{key[:40]!r} is not an option name")
        size = len(json.dumps(value, ensure_ascii=False, default=str))
        if size > MAX_OPTION_VALUE:
            raise HTTPException(413, f"{key}: value of {size} bytes is over {MAX_OPTION_VALUE >> 10} KB")
    new = _unknown(payload.keys() - state.options.keys())
    if len(_unknown(state.options)) + len(new) > MAX_OPTION_KEYS:
        raise HTTPException(400, f"over {MAX_OPTION_KEYS} options sd1kit does not know ({len(new)} new)")


def _unknown(keys) -> set:
    """Option names that neither generation applies nor sd1kit lists (their count is capped; known ones never)."""
    from sd1kit.server.payloads import OverrideSettings

    return set(keys) - set(OverrideSettings.model_fields)


def store_options(state, values: dict) -> list[str]:
    """Keep `values` as stored options (`sd_model_checkpoint` aside: it is the model): known names and names
    already kept always, unknown new ones while under the cap; the names left out, said as warnings."""
    room = MAX_OPTION_KEYS - len(_unknown(state.options))
    left = []
    for key, value in values.items():
        if key == "sd_model_checkpoint":
            continue
        if key not in state.options and key in _unknown([key]):
            if room <= 0:
                left.append(key)
                continue
            room -= 1
        state.options[key] = value
    return [f"options: {', '.join(left[:5])}{' ...' if len(left) > 5 else ''} not kept (over {MAX_OPTION_KEYS} "
            "unknown options)"] if left else []


def check_generation_options(payload: dict) -> None:
    """The stored options that generation applies (the option table's `override_settings.X` rows) typed (422)
    and within bounds (400) before they are kept, so a bad value never fails every later job."""
    from sd1kit.pipeline.option_surfaces import options_from_api
    from sd1kit.server.payloads import OverrideSettings, validated_model

    validated_model(OverrideSettings, payload)
    options_from_api({"override_settings": payload}, "txt2img")


@router.post("/sdapi/v1/options")
async def set_options(payload: dict, state: State):
    """A1111's settings: kept and returned by GET; those that change pictures apply to every later job (under a
    payload's own `override_settings`); `sd_model_checkpoint` switches the model now."""
    check_option_values(payload, state)
    check_generation_options(payload)
    if "sd_vae" in payload:  # refuse a name that is not there, or is a path, before anything changes
        await asyncio.to_thread(state.find_vae, payload["sd_vae"])
    if "sd_model_checkpoint" in payload:
        entry = await asyncio.to_thread(find_checkpoint, state, str(payload["sd_model_checkpoint"]))

        def switch(job):
            previous, state.model_title = state.model_title, entry["title"]
            try:
                state.load(job)
            except BaseException:  # a file that cannot load leaves the server on the model it had
                state.model_title = previous
                raise
            return None
        await state.run("options", switch)
    store_options(state, payload)
    return None


def _rss() -> int:
    """The process's current resident memory (VmRSS of /proc/self/status; ru_maxrss where there is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@router.get("/sdapi/v1/memory")
async def memory():
    """A1111's shape (`modules/api/api.py` `get_memory`, `models.MemoryResponse`): `ram` as {free, used, total}
    with `used` the current RSS and `free` = total - used, as A1111 computes them; `peak` added (ru_maxrss)."""
    import resource

    rss = _rss()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"ram": {"free": total - rss, "used": rss, "total": total, "peak": peak},
            "cuda": {"error": "unavailable"}}
