"""Composable prompts: `a AND b :1.2` splits into sub-prompts with weights (A1111 `get_multicond_prompt_list`)."""

from __future__ import annotations

import re

_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def split_and(prompt: str) -> list[tuple[str, float]]:
    """[(sub-prompt text, weight), ...]; a prompt without AND is one sub-prompt of weight 1."""
    parts = []
    for sub in _AND.split(prompt):
        m = _WEIGHT.search(sub)
        text, weight = (m.group(1), m.group(2)) if m else (sub, None)
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts
