"""A1111's infotext ("PNG Info") writer (`modules/processing.py create_infotext`, formats.md §6)."""

from __future__ import annotations

import json

# A1111's order of the generation parameters; keys not listed go after these, before "Version".
PARAM_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration", "Size",
    "Model hash", "Model", "VAE hash", "VAE", "Variation seed", "Variation seed strength", "Seed resize from",
    "Denoising strength", "Conditional mask weight", "Clip skip", "ENSD", "Token merging ratio",
    "Token merging ratio hr", "Init image hash", "RNG", "NGMS", "Tiling",
)
TRAILING = ("Version", "User")


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "CFG scale: 7", as infotexts show it
    return str(value)


def quote(value) -> str:
    """A1111's rule: written as is unless it holds `,`, newline or `:`; then as a JSON string."""
    text = _text(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def format_params(params: dict) -> str:
    """The parameters line: None values skipped, a key equal to its value written bare."""
    ordered = [k for k in PARAM_ORDER if k in params]
    ordered += [k for k in params if k not in PARAM_ORDER and k not in TRAILING]
    ordered += [k for k in TRAILING if k in params]
    parts = []
    for key in ordered:
        value = params[key]
        if value is None:
            continue
        parts.append(key if key == value else f"{key}: {quote(value)}")
    return ", ".join(parts)


def create_infotext(prompt: str, negative: str, params: dict) -> str:
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{format_params(params)}".strip()
