"""Composable prompts: `a AND b :1.2` splits into sub-prompts with weights (A1111 `get_multicond_prompt_list`)."""

from __future__ import annotations

import re

_AND = re.compile(r"\bAND\b")
# A1111's `^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$`, read without it (see _weight)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?|\d*\.\d+)")


def _weight(sub: str) -> tuple[str, str | None]:
    r"""What A1111's weight regex captures, found from the end: the lazy text stops at the first place from
    which `\s*:\s*NUMBER\s*$` or `\s*$` matches, so the number is the last token (after a colon and blanks,
    before trailing blanks), the text all before the blanks ahead of that colon. (The regex itself backtracks
    through every run of blanks: quadratic.) `\s` is str.isspace, character for character."""
    end = len(sub.rstrip())
    start = end
    while start > 0 and not sub[start - 1].isspace() and sub[start - 1] != ":":
        start -= 1
    colon = len(sub[:start].rstrip())
    if start == end or colon == 0 or sub[colon - 1] != ":" or not _NUMBER.fullmatch(sub, start, end):
        return sub[:end], None
    return sub[:len(sub[:colon - 1].rstrip())], sub[start:end]


def split_and(prompt: str) -> list[tuple[str, float]]:
    """[(sub-prompt text, weight), ...]; a prompt without AND is one sub-prompt of weight 1."""
    parts = []
    for sub in _AND.split(prompt):
        text, weight = _weight(sub)
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts
