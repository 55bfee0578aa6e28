"""Emphasis: `(x)` x1.1, `[x]` /1.1, `(x:w)`, escapes and BREAK, with the exact weights A1111's
`parse_prompt_attention` gives (including its float products and its leniency with unbalanced brackets)."""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np

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
_BREAK = re.compile(r"\bBREAK\b")  # A1111 splits on `\s*\bBREAK\b\s*`: the same, the blanks stripped after


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _split_break(token: str) -> list[str | None]:
    r"""A text token's pieces, None for each chunk break: A1111's `re.split(r"\s*\bBREAK\b\s*", text)` without
    its regex, which backtracks through every run of blanks (quadratic on a prompt of spaces)."""
    parts = _BREAK.split(token)
    if len(parts) == 1:
        return parts
    last, out = len(parts) - 1, []
    for i, part in enumerate(parts):
        if i:
            out.append(None)
        out.append(part.rstrip() if i == 0 else part.lstrip() if i == last else part.strip())
    return out


def _scan(text: str) -> tuple[list[str | None], list[tuple[int, int, float]]]:
    """The pieces (None: BREAK) and the multiplications A1111 applies to them, in its order: (first piece,
    end piece, factor) as each bracket closes, then the unclosed round brackets, then the unclosed square ones."""
    pieces: list[str | None] = []
    ops: list[tuple[int, int, float]] = []
    round_open: list[int] = []
    square_open: list[int] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        weight = _float(m.group("weight")) if m.group("weight") is not None else None
        if tok.startswith("\\"):
            pieces.append(tok[1:])
        elif tok == "(":
            round_open.append(len(pieces))
        elif tok == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            ops.append((round_open.pop(), len(pieces), weight))
        elif tok == ")" and round_open:
            ops.append((round_open.pop(), len(pieces), ROUND_MULTIPLIER))
        elif tok == "]" and square_open:
            ops.append((square_open.pop(), len(pieces), SQUARE_MULTIPLIER))
        else:
            pieces += _split_break(tok)
    n = len(pieces)
    ops += [(p, n, ROUND_MULTIPLIER) for p in round_open]
    return pieces, ops + [(p, n, SQUARE_MULTIPLIER) for p in square_open]


def _multiply(weights: np.ndarray, ops: list[tuple[int, int, float]]) -> None:
    """Each op multiplies weights[start:end] in place, in order: every weight gets its factors one at a time, as
    A1111's `multiply_range` loop does (float products depend on their order), but vectorised. A run of suffix
    multiplications by one factor over equal weights (unclosed brackets around plain text) is a running product."""
    i = 0
    while i < len(ops):
        start, end, factor = ops[i]
        j = i
        while j + 1 < len(ops) and ops[j + 1][1:] == (end, factor) and ops[j + 1][0] >= ops[j][0]:
            j += 1
        if j - i > 8 and end == len(weights) and bool((weights[start:] == weights[start]).all()):
            value = float(weights[start])
            for k in range(i, j + 1):
                value *= factor
                weights[ops[k][0]:ops[k + 1][0] if k < j else end] = value
        else:
            for k in range(i, j + 1):
                weights[ops[k][0]:ops[k][1]] *= ops[k][2]
        i = j + 1


def parse_prompt_attention(text: str) -> list[list]:
    """[[text, weight], ...]; BREAK becomes ["BREAK", -1]; runs of equal weight are merged. A1111's
    `modules/prompt_parser.py parse_prompt_attention`, its results to the bit, in time linear in the prompt for
    all but adversarial nestings (there: one vectorised pass per bracket)."""
    pieces, ops = _scan(text)
    if not pieces:
        return [["", 1.0]]
    weights = np.array([-1.0 if p is None else 1.0 for p in pieces])
    with np.errstate(all="ignore"):  # overflow to inf, 0 * inf: as Python floats do, silently
        _multiply(weights, ops)
    touched = np.zeros(len(pieces) + 1, np.int64)
    for start, end, _ in ops:
        touched[start] += 1
        touched[end] -= 1
    touched = np.cumsum(touched[:-1]) > 0
    merged: list[list] = []
    for piece, weight, moved in zip(pieces, weights.tolist(), touched.tolist()):
        if piece is None:
            piece, weight = BREAK[0], weight if moved else BREAK[1]
        if merged and weight == merged[-1][1]:
            merged[-1][0].append(piece)
        else:
            merged.append([[piece], weight])
    return [["".join(parts), weight] for parts, weight in merged]


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
