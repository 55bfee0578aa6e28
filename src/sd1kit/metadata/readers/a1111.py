"""AUTOMATIC1111 / Forge / reForge / SD.Next / Civitai-generator infotexts, wherever they are stored
(https://github.com/AUTOMATIC1111/stable-diffusion-webui, modules/infotext_utils.py). Also the A1111-style texts of
other writers, read the same way: ComfyUI saver nodes (ComfyUI-Image-Saver, SD Prompt Saver: `Version: ComfyUI`,
ComfyUI sampler names such as `dpmpp_2m_karras`), Civitai's generator (`Civitai resources`, `Civitai metadata`; see
readers/civitai.py), and writers that end lines with `\\r\\n` (Stability Matrix) or spell the keys differently
(`CFG Scale`, `cfg scale`, `Scheduler`): line ends are made `\\n` and spelling variants of A1111's own keys are
renamed to A1111's spelling, only when A1111's spelling is absent."""

from __future__ import annotations

from sd1kit.metadata.containers import Containers
from sd1kit.metadata.infotext import split_infotext
from sd1kit.metadata.picture import PictureInfo, loras_from_prompt
from sd1kit.metadata.readers import civitai
from sd1kit.metadata.readers.names import a1111_sampler, a1111_schedule

# where an infotext may be, in the order A1111 (and its stealth extension) looks
SOURCES = ("parameters", "exif:UserComment", "postprocessing", "comment", "stealth", "sidecar")
MAX_INFOTEXT = 1 << 20  # as Pillow's MAX_TEXT_CHUNK, through which A1111 reads PNG infotexts
CANONICAL = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "VAE hash",
             "VAE", "Denoising strength", "Clip skip", "ENSD", "Version")
VARIANTS = {**{k.lower(): k for k in CANONICAL}, "cfg": "CFG scale", "cfg_scale": "CFG scale",
            "cfgscale": "CFG scale", "clip_skip": "Clip skip", "model_hash": "Model hash", "scheduler": "Schedule type",
            "schedule": "Schedule type", "denoise": "Denoising strength"}
# ComfyUI scheduler names that SD Prompt Saver appends to the sampler ("dpmpp_2m_karras")
COMFY_SCHEDULERS = ("karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta", "normal",
                    "linear_quadratic", "kl_optimal", "align_your_steps")


def _is_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def infotext_of(found: Containers) -> tuple[str, str] | None:
    for key in SOURCES:
        text = found.texts.get(key)
        if text and text.strip() and not _is_json(text):
            return key, text
    return None


def _tool_and_app(params: dict[str, str]) -> tuple[str, str | None]:
    version = params.get("Version")
    app = params.get("App")
    if version == "ComfyUI":  # ComfyUI-Image-Saver and SD Prompt Saver write this
        return "comfyui", "ComfyUI (A1111-compatible saver)"
    if "Civitai resources" in params or "Civitai metadata" in params:
        return "civitai", version or "Civitai"
    if version and version.lower().startswith("fooocus"):
        return "fooocus", version
    if app:
        return "a1111", f"{app} {version}" if version else app
    return "a1111", version


def spelled(params: dict[str, str], warnings: list[str]) -> dict[str, str]:
    """`params` with spelling variants of A1111's keys renamed (`CFG Scale` -> `CFG scale`), kept in place; a
    variant whose A1111 spelling is also there stays as written."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = VARIANTS.get(key.lower(), key) if key not in CANONICAL else key
        if name != key and (name in params or name in out):
            name = key
        elif name == "Schedule type" and key != name:
            value = a1111_schedule(value) or value
        if name != key:
            warnings.append(f"the key {key[:40]!r} was read as A1111's {name!r}")
        out[name] = value
    return out


def comfy_sampler(params: dict[str, str]) -> None:
    """A ComfyUI sampler name, possibly with the scheduler appended (SD Prompt Saver), in A1111's terms."""
    written = params.get("Sampler")
    if not written:
        return
    name, schedule = written, None
    for suffix in COMFY_SCHEDULERS:
        if written.endswith("_" + suffix):
            name, schedule = written[:-len(suffix) - 1], suffix
            break
    sampler, legacy = a1111_sampler(name)
    if sampler == name:
        return  # not a sampler name sd1kit knows, or already A1111's: kept as written
    params["Sampler"] = sampler
    if "Schedule type" not in params and (schedule or legacy):
        params["Schedule type"] = a1111_schedule(schedule) if schedule else legacy


def from_infotext(text: str, path: str | None = None, source: str = "parameters", comfy: bool = False) -> PictureInfo:
    info = PictureInfo(path=path, raw={source: text})
    if len(text) > MAX_INFOTEXT:
        info.warnings.append(f"the {source} text is {len(text) / (1 << 20):.1f} MiB; only its first "
                             f"{MAX_INFOTEXT >> 20} MiB was read")
        text = text[:MAX_INFOTEXT]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "Civitai metadata" in text:
        info.prompt, info.negative_prompt, params = civitai.split(text)
    else:
        info.prompt, info.negative_prompt, params = split_infotext(text)
    info.parameters = spelled(params, info.warnings)
    info.tool, info.app = _tool_and_app(info.parameters)
    if comfy or info.tool == "comfyui":
        comfy_sampler(info.parameters)
    info.loras = loras_from_prompt(info.prompt, info.parameters)
    if "Civitai resources" in info.parameters or "Civitai metadata" in info.parameters:
        civitai.apply(info)
    return info


def read(found: Containers) -> PictureInfo | None:
    hit = infotext_of(found)
    if hit is None:
        return None
    source, text = hit
    info = from_infotext(text, found.path, source)
    info.raw = dict(found.texts)
    return info
