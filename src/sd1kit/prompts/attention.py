"""Emphasis: `(x)` x1.1, `[x]` /1.1, `(x:w)`, escapes and BREAK, with the exact weights A1111's
`parse_prompt_attention` gives (including its float products and its leniency with unbalanced brackets)."""

from __future__ import annotations

import re
from decimal import Decimal

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = ["BREAK", -1]

# One token per match, tried in this order: escapes, a lone backslash, openers, an explicit weight closing a
# round bracket, closers, a run of ordinary text, a stray colon.
_TOKEN = re.compile(r"""
    \\[()\[\]\\] | \\
  | [(\[]
  | :\s*(?P<weight>[+-]?[.\d]+)\s*\)
  | [)\]]
  | [^\\()\[\]:]+
  | :
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_prompt_attention(text: str) -> list[list]:
    """[[text, weight], ...]; BREAK becomes ["BREAK", -1]; runs of equal weight are merged."""
    out: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for item in out[start:]:
            item[1] *= factor

    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        weight = _float(m.group("weight")) if m.group("weight") is not None else None
        if tok.startswith("\\"):
            out.append([tok[1:], 1.0])
        elif tok == "(":
            round_open.append(len(out))
        elif tok == "[":
            square_open.append(len(out))
        elif weight is not None and round_open:
            scale_from(round_open.pop(), weight)
        elif tok == ")" and round_open:
            scale_from(round_open.pop(), ROUND_MULTIPLIER)
        elif tok == "]" and square_open:
            scale_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for i, part in enumerate(_BREAK.split(tok)):
                if i:
                    out.append(list(BREAK))
                out.append([part, 1.0])
    for start in round_open:
        scale_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        scale_from(start, SQUARE_MULTIPLIER)
    if not out:
        return [["", 1.0]]
    merged = [out[0]]
    for item in out[1:]:
        if item[1] == merged[-1][1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


def format_attention(pairs: list[list]) -> str:
    """Text that `parse_prompt_attention` reads back as `pairs` (up to empty pieces): explicit weights, escaped
    brackets. A lone backslash, which A1111 drops, fences a chunk break from neighbouring words and spaces, and
    splits a word BREAK that is not a chunk break."""
    out, fence = [], False
    for text, weight in pairs:
        if [text, weight] == BREAK:
            out.append("\\BREAK")
            fence = True
            continue
        escaped = re.sub(r"([\\()\[\]])", r"\\\1", text)
        escaped = re.sub(r"\bBREAK\b", r"BRE\\AK", escaped)
        piece = escaped if weight == 1.0 else f"({escaped}:{format(Decimal(repr(weight)), 'f')})"
        if fence and piece and piece[0] not in "()[]\\":
            piece = "\\" + piece  # else the break would swallow the spaces or join the word that follow
        fence = fence and not piece
        out.append(piece)
    return "".join(out)


def normalize_attention(pairs: list[list]) -> list[list]:
    """Drop empty pieces and merge equal neighbours: two lists that normalise equal weight every token alike."""
    out: list[list] = []
    for text, weight in pairs:
        if not text:
            continue
        if out and out[-1][1] == weight and [text, weight] != BREAK and out[-1] != BREAK:
            out[-1] = [out[-1][0] + text, weight]
        else:
            out.append([text, weight])
    return out
