"""Prompt editing `[from:to:when]`, `[to:when]`, `[from::when]` and alternation `[a|b]`: the per-step prompt
schedule exactly as A1111's `get_learned_conditioning_prompt_schedules` computes it.

A1111 parses with a lark Earley grammar; this is a hand-written recursive-descent parser for the same language
(plain text, `( )`/`(a:b)`/`[ ]` kept as literal text, scheduled and alternate brackets, stray brackets allowed only
at the top level). A prompt that does not parse is used as it is for every step, as A1111 does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+")  # `.`: a backslash before a newline is not an escape
_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)\s*\]")
_STRAY = "[]():"


@dataclass
class Scheduled:
    before: list | None
    after: list
    number: str  # the `when` as written: "3", ".5", "1.5"
    when: int = 0


@dataclass
class Alternate:
    options: list  # each a node list, or None for an empty option


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.n = len(text)
        self.memo: dict[tuple[str, int], tuple | None] = {}

    def prompt(self, i: int) -> tuple[list, int]:
        """Greedy: as many plain runs and bracket constructs as parse from i."""
        s, items = self.s, []
        while i < self.n:
            c = s[i]
            if c == "(" or c == "[":
                hit = self.construct(i)
                if hit is None:
                    break
                nodes, i = hit
                items.extend(nodes)
            else:
                m = _PLAIN.match(s, i)
                if m is None:
                    break
                items.append(m.group())
                i = m.end()
        return items, i

    def construct(self, i: int) -> tuple[list, int] | None:
        key = (self.s[i], i)
        if key not in self.memo:
            self.memo[key] = self._paren(i) if self.s[i] == "(" else self._bracket(i)
        return self.memo[key]

    def _at(self, i: int) -> str:
        return self.s[i] if i < self.n else ""

    def _paren(self, i: int) -> tuple[list, int] | None:
        first, j = self.prompt(i + 1)
        if self._at(j) == ")":
            return ["(", *first, ")"], j + 1
        if self._at(j) == ":":
            second, k = self.prompt(j + 1)
            if self._at(k) == ")":
                return ["(", *first, ":", *second, ")"], k + 1
        return None

    def _bracket(self, i: int) -> tuple[list, int] | None:
        first, j = self.prompt(i + 1)
        sep = self._at(j)
        if sep == "]":
            return ["[", *first, "]"], j + 1
        if sep == "|":
            options = [first]
            while self._at(j) == "|":
                option, k = self.prompt(j + 1)
                options.append(option if k > j + 1 else None)
                j = k
            return ([Alternate(options)], j + 1) if self._at(j) == "]" else None
        if sep == ":":
            m = _NUMBER.match(self.s, j + 1)
            if m:  # [to:when]
                return [Scheduled(None, first, m.group(1))], m.end()
            second, k = self.prompt(j + 1)
            if self._at(k) == ":" and (m := _NUMBER.match(self.s, k + 1)):  # [from:to:when]
                return [Scheduled(first, second, m.group(1))], m.end()
        return None

    def start(self) -> list | None:
        i, nodes = 0, []
        while i < self.n:
            items, j = self.prompt(i)
            if j > i:
                nodes.extend(items)
                i = j
            elif self.s[i] in _STRAY:
                nodes.append(self.s[i])
                i += 1
            else:  # `|` outside an alternation, or a backslash before a newline: A1111's grammar rejects it
                return None
        return nodes


def parse_schedule_tree(prompt: str) -> list | None:
    """Node list (str | Scheduled | Alternate), or None when A1111's grammar would reject the prompt."""
    if "[" not in prompt:  # nothing to schedule; the result is the prompt either way
        return None
    try:
        return _Parser(prompt).start()
    except RecursionError:  # absurd nesting: use the prompt as it is
        return None


def _walk(nodes):
    for node in nodes or ():
        if isinstance(node, Scheduled):
            yield node
            yield from _walk(node.before)
            yield from _walk(node.after)
        elif isinstance(node, Alternate):
            yield node
            for option in node.options:
                yield from _walk(option)


def _resolve_when(number: str, steps: int, int_offset: int, flt_offset: float, old: bool) -> int:
    v = float(number)
    if old:
        v = v * steps if v < 1 else v
    elif "." in number:
        v = (v - flt_offset) * steps
    else:
        v = v - int_offset
    return int(max(min(v, steps), -1.0))  # clamped first so 1e999 cannot overflow int()


def render(nodes: list, step: int) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Scheduled):
            out.append(render((node.before or []) if step <= node.when else node.after, step))
        else:
            out.append(render(node.options[(step - 1) % len(node.options)] or [], step))
    return "".join(out)


def prompt_schedule(prompt: str, steps: int, hires_steps: int | None = None,
                    use_old_scheduling: bool = False) -> list[list]:
    """[[until_step, text], ...] for one prompt (A1111's get_learned_conditioning_prompt_schedules).

    With `hires_steps` (the hires-fix pass), integer `when` values count on from the base pass's steps and
    fractional ones from 1.0, as A1111 1.6+ does; `use_old_scheduling` restores the pre-1.6 rule.
    """
    if hires_steps is None or use_old_scheduling:
        int_offset, flt_offset, total = 0, 0.0, steps
    else:
        int_offset, flt_offset, total = steps, 1.0, hires_steps
    nodes = parse_schedule_tree(prompt)
    if nodes is None:
        return [[total, prompt]]
    until = {total}
    for node in _walk(nodes):
        if isinstance(node, Scheduled):
            node.when = _resolve_when(node.number, total, int_offset, flt_offset, use_old_scheduling)
            if node.when >= 1:
                until.add(node.when)
        else:
            until.update(range(1, total + 1))
    return [[t, render(nodes, t)] for t in sorted(until)]


def serialize(nodes: list) -> str:
    """Prompt text for a node list; parsing it again gives the same schedule."""
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Scheduled):
            before = serialize(node.before) + ":" if node.before is not None else ""
            out.append(f"[{before}{serialize(node.after)}:{node.number}]")
        else:
            out.append("[" + "|".join(serialize(o or []) for o in node.options) + "]")
    return "".join(out)
