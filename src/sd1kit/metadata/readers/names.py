"""Other tools' sampler and scheduler names in A1111's terms."""

from __future__ import annotations

from sd1kit.errors import Sd1kitError
from sd1kit.sampling.registry import resolve_sampler

# tool-specific spellings that are not k-diffusion ids or A1111 aliases
SAMPLER_SYNONYMS = {
    "uni_pc": "UniPC", "uni_pc_bh2": "UniPC", "pndm": "PLMS", "euler_a": "Euler a", "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a", "dpmpp_2s": "DPM++ 2S a", "dpmpp_3m": "DPM++ 3M SDE", "ddim_v3": "DDIM",
}
SCHEDULE_SYNONYMS = {"ddim_uniform": "DDIM", "native": None}


def a1111_sampler(name: str | None) -> tuple[str | None, str | None]:
    """(A1111 sampler name, schedule name or None); an unknown name is kept as written, a value that is not a
    name (a list, a number) is none."""
    if not name or not isinstance(name, str):
        return None, None
    text = str(name).strip()
    karras = text.endswith("_k")  # InvokeAI: "dpmpp_2m_k" = DPM++ 2M with Karras sigmas
    base = text[:-2] if karras else text
    base = base[:-4] if base.endswith("_gpu") else base  # ComfyUI: the same sampler, noise made on the GPU
    base = base[7:] if base.startswith("sample_") else base  # early ComfyUI wrote k-diffusion's function names
    base = SAMPLER_SYNONYMS.get(base, base)
    try:
        spec, sched = resolve_sampler(base)
    except Sd1kitError:
        return text, None
    legacy = sched.name if sched.id != "automatic" and base.lower() not in (spec.name.lower(), spec.id, *spec.aliases) else None
    return spec.name, "Karras" if karras else legacy


def a1111_schedule(name: str | None) -> str | None:
    if not name or not isinstance(name, str):
        return None
    text = str(name).strip()
    if text in SCHEDULE_SYNONYMS:
        return SCHEDULE_SYNONYMS[text]
    from sd1kit.sampling.registry import SCHEDULES

    for spec in SCHEDULES:
        if text.lower() in (spec.name.lower(), spec.id, *(a.lower() for a in spec.aliases)):
            return spec.name
    return text
