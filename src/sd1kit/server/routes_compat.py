"""The rest of A1111's `/sdapi/v1` lists and the ControlNet extension's `/controlnet/*` lists, answered as A1111
answers them (modules/api/api.py, modules/api/models.py; sd-webui-controlnet's scripts/api.py): the real data where
sd1kit has it, A1111's empty-but-valid answer where it has nothing (face restorers, extensions), and a refusal in
the error shape where a client asks for work sd1kit does not do (interrogate)."""

from __future__ import annotations

from fastapi import APIRouter

from sd1kit.errors import Sd1kitError
from sd1kit.server.state import State

router = APIRouter()
HYPERNETWORK_SUFFIXES = (".pt", ".ckpt", ".safetensors")


@router.get("/sdapi/v1/latent-upscale-modes")
async def latent_upscale_modes():
    from sd1kit.pipeline.hires import LATENT_UPSCALERS

    return [{"name": name} for name in LATENT_UPSCALERS]


@router.get("/sdapi/v1/cmd-flags")
async def cmd_flags(state: State):
    """A1111 answers with its command-line flags; these are the ones sd1kit has, under A1111's names."""
    config, runtime = state.config, state.runtime()
    return {"api": True, "nowebui": False, "listen": False, "ckpt_dir": _folder(state, "Stable-diffusion"),
            "vae_dir": _folder(state, "VAE"), "lora_dir": _folder(state, "Lora"),
            "lyco_dir": _folder(state, "LyCORIS"), "hypernetwork_dir": _folder(state, "hypernetworks"),
            "embeddings_dir": str(state.embeddings_folder()) if state.embeddings_folder() else None,
            "api_auth": "***" if config.auth else None, "no_half": runtime.dtype == "fp32",
            "use_cpu": ["all"] if runtime.device == "cpu" else [], "sd1kit_runtime": runtime.label}


@router.get("/sdapi/v1/prompt-styles")
async def prompt_styles(state: State):
    """`styles.csv` beside the models folder (A1111's layout: name, prompt, negative_prompt)."""
    from sd1kit.server.styles import read_styles

    return read_styles(state)


@router.get("/sdapi/v1/face-restorers")
async def face_restorers():
    return []


@router.get("/sdapi/v1/realesrgan-models")
async def realesrgan_models():
    return []


@router.get("/sdapi/v1/hypernetworks")
async def hypernetworks(state: State):
    return [{"name": p.stem, "path": str(p)} for p in state.files("hypernetworks", HYPERNETWORK_SUFFIXES)]


@router.get("/sdapi/v1/scripts")
async def scripts():
    return {"txt2img": [], "img2img": []}


@router.get("/sdapi/v1/script-info")
async def script_info():
    return []


@router.get("/sdapi/v1/extensions")
async def extensions():
    return []


@router.post("/sdapi/v1/interrogate")
async def interrogate():
    raise Sd1kitError("interrogate", "sd1kit has no CLIP or DeepBooru interrogator; captioning is not supported")


@router.post("/sdapi/v1/refresh-vae")
@router.post("/sdapi/v1/refresh-embeddings")
async def refresh_lists():
    """sd1kit reads its folders on every request, so a refresh has nothing to do."""
    return None


@router.post("/sdapi/v1/unload-checkpoint")
async def unload_checkpoint(state: State):
    def unload(job):
        from sd1kit.upscalers import forget_loaded

        state.loaded = None
        forget_loaded()  # the model upscaler kept from the last hires / Extras job, too
        return None
    await state.run("unload", unload)
    return None


@router.post("/sdapi/v1/reload-checkpoint")
async def reload_checkpoint(state: State):
    await state.run("reload", state.load)
    return None


@router.get("/controlnet/version")
async def controlnet_version():
    return {"version": 2}


@router.get("/controlnet/model_list")
async def controlnet_model_list(state: State):
    from sd1kit.formats.hashes import file_hashes
    from sd1kit.server.state import MODEL_SUFFIXES

    files = state.files("ControlNet", MODEL_SUFFIXES)
    return {"model_list": [f"{p.stem} [{file_hashes(p).sha256[:8]}]" for p in files]}


@router.get("/controlnet/module_list")
async def controlnet_module_list():
    from sd1kit.pipeline.controlnet import MODULES

    return {"module_list": list(MODULES), "module_detail": {m: {"model_free": m in ("none", "invert"),
                                                                "sliders": []} for m in MODULES}}


def _folder(state, kind: str) -> str | None:
    folder = state.folder(kind)
    return str(folder) if folder else None
