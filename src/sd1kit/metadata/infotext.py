"""A1111's infotext ("PNG Info"): the writer (`modules/processing.py create_infotext`, formats.md §6) and the
parser (`modules/infotext_utils.py parse_generation_parameters`, §7), so that what A1111 wrote is written back
byte-identical."""

from __future__ import annotations

import heapq
import json
import re

from sd1kit.metadata.limits import load_json

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


def a1111_order(params: dict) -> dict:
    """`params` in A1111's order: its fixed keys, then the others as given, then Version and User."""
    ordered = [k for k in PARAM_ORDER if k in params]
    ordered += [k for k in params if k not in PARAM_ORDER and k not in TRAILING]
    ordered += [k for k in TRAILING if k in params]
    return {k: params[k] for k in ordered}


def _written(key: str, value) -> str:
    if key in RAW_JSON_KEYS and isinstance(value, str) and value[:1] in "[{":
        return value  # third-party raw JSON is written back as it came
    if key in RAW_JSON_KEYS and isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return quote(value)


def format_params(params: dict) -> str:
    """The parameters line, in the dict's order: None values skipped, a key equal to its value written bare."""
    return ", ".join(key if key == value else f"{key}: {_written(key, value)}"
                     for key, value in params.items() if value is not None)


def create_infotext(prompt: str, negative: str, params: dict) -> str:
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{format_params(params)}".strip()


# --- reading: A1111's parse_generation_parameters (modules/infotext_utils.py, formats.md §7) ---

PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
RAW_JSON_KEYS = ("Hashes", "Resources", "Civitai resources")  # third-party writers put raw JSON here


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


_KEY = re.compile(r"\s*(\w[\w \-/]+):\s*")
_SPACE_AND_RUN = re.compile(r"\s*[\w \-/]*")
_WORD = re.compile(r"\w")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])+"(?=,|$)')
_PLAIN = re.compile(r"[^,]*,?")


def param_pairs(line: str) -> list[tuple[str, str]]:
    """`PARAM.findall(line)` in linear time: the regex alone is quadratic on long runs of word characters
    without a colon (a 64 KB prompt line takes 20 s), so runs that cannot hold a key are skipped whole."""
    pairs, pos, n = [], 0, len(line)
    while pos < n:
        m = _KEY.match(line, pos)
        if m is None:
            run = _SPACE_AND_RUN.match(line, pos).end()
            if line[run:run + 1] == ":":  # a key may still start at a later word character of this run
                w = _WORD.search(line, pos + 1, run)
                pos = w.start() if w is not None and run - w.start() >= 2 else max(run, pos + 1)
            else:
                pos = max(run, pos + 1)
            continue
        quoted = _QUOTED.match(line, m.end())
        if quoted is not None:
            value, pos = quoted.group(), quoted.end() + 1
        else:
            plain = _PLAIN.match(line, m.end())
            value, pos = plain.group().removesuffix(","), plain.end()
        pairs.append((m.group(1), value))
    return pairs


_STRUCTURAL = re.compile(r'["\\\[\]{}]')
_OUT, _IN, _ESCAPE = 0, 1, 2  # a scan's lexer state: outside strings, inside one, after a backslash inside one


class _Scans:
    """The scans that are in one lexer state at the current character, merged: from here on they read the text
    alike, so they share one depth counter; each waits for the depth it started at (a heap of minus that
    depth, in the counter's coordinates)."""

    __slots__ = ("depth", "waiting")

    def __init__(self):
        self.depth, self.waiting = 0, []


def _merge(a: _Scans | None, b: _Scans | None) -> _Scans | None:
    """Scans of two states that reach one state: the smaller heap moved into the larger (depths translated)."""
    if a is None or b is None:
        return a or b
    if len(a.waiting) < len(b.waiting):
        a, b = b, a
    shift = a.depth - b.depth
    for key, start in b.waiting:
        heapq.heappush(a.waiting, (key - shift, start))
    return a


def _bracket_ends(line: str, starts: dict[int, str]) -> dict[int, int]:
    """For each start (the `[`/`{` of `Key: [...]`), where the bracket matching that begins there with no string
    open (the rule below) reaches depth 0 again; starts that never close are left out. All scans run at once:
    at any character they are in one of three lexer states, and scans in the same state go on alike."""
    ends: dict[int, int] = {}
    state: list[_Scans | None] = [None, None, None]
    last = -1
    for m in _STRUCTURAL.finditer(line, min(starts)):
        i, ch = m.start(), m.group()
        if i > last + 1:  # ordinary characters between: an escape is spent
            state = [state[_OUT], _merge(state[_IN], state[_ESCAPE]), None]
        last = i
        out, inside, escaped = state
        if ch == '"':
            state = [inside, _merge(out, escaped), None]
        elif ch == "\\":
            state = [out, escaped, inside]
        else:
            if i in starts:
                out = out or _Scans()
                heapq.heappush(out.waiting, (-out.depth, i))
            if out is not None:
                out.depth += 1 if ch in "[{" else -1
                while out.waiting and out.waiting[0][0] == -out.depth:
                    ends[heapq.heappop(out.waiting)[1]] = i + 1
            state = [out if out is None or out.waiting else None, _merge(inside, escaped), None]
    return ends


def _raw_json_spans(line: str) -> list[tuple[int, int, str]]:
    """(start, end, key) of each `Key: {...}` / `Key: [...]` written as unquoted JSON, by bracket matching from its
    bracket: `[{` count up, `]}` down, not inside JSON strings (which end at an unescaped `"`); the span ends where
    the count is back to 0. Linear: one pass for all keys (`_bracket_ends`), not one scan per key to the end of
    the line (quadratic on `Hashes: {` repeated)."""
    starts: dict[int, str] = {}
    for key in RAW_JSON_KEYS:
        for m in re.finditer(rf"(?:^|,\s*){re.escape(key)}:\s*([\[{{])", line):
            starts[m.start(1)] = key
    if not starts:
        return []
    ends = _bracket_ends(line, starts)
    return sorted((start, ends[start], key) for start, key in starts.items() if start in ends)


def parse_params_line(line: str) -> dict[str, str] | None:
    """The `key: value` pairs of a parameters line in order, values as written (quotes removed; raw JSON kept
    as its text), or None when A1111 would not take the line for parameters (fewer than 3 pairs)."""
    raws: list[str] = []
    masked, last = [], 0
    for start, end, _key in _raw_json_spans(line):
        if start < last:
            continue
        masked.append(line[last:start] + f'"\\u0000{len(raws)}"')  # a quoted stand-in the regex takes whole
        raws.append(line[start:end])
        last = end
    masked.append(line[last:])
    pairs = param_pairs("".join(masked))
    if len(pairs) < 3:
        return None
    params: dict[str, str] = {}
    for key, value in pairs:
        value = _unquote(value)
        if value.startswith("\0") and value[1:].isdigit() and int(value[1:]) < len(raws):
            value = raws[int(value[1:])]
        params[key] = value
    return params


def split_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """Prompt, negative prompt and parameters (as `parse_params_line`) of an A1111 infotext, by A1111's rules:
    the last line holds the parameters when it has at least 3 pairs; lines are stripped; the negative prompt
    starts at a line beginning with "Negative prompt:" and runs to the parameters."""
    *lines, last = text.strip().split("\n")
    params = parse_params_line(last)
    if params is None:
        lines.append(last)
        params = {}
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt), "\n".join(negative), params


def parse_infotext(text: str) -> dict:
    """Fields of an A1111 infotext as A1111 holds them: "Prompt", "Negative prompt" and every parameter, sizes
    as Key-1 / Key-2, third-party raw JSON decoded."""
    prompt, negative, params = split_infotext(text)
    result: dict = {"Prompt": prompt, "Negative prompt": negative}
    for key, value in params.items():
        m = IMAGE_SIZE.match(value)
        if key in RAW_JSON_KEYS and value[:1] in "[{":
            try:
                result[key] = load_json(value, key)
            except ValueError:
                result[key] = value
        elif m:
            result[f"{key}-1"], result[f"{key}-2"] = m.group(1), m.group(2)
        else:
            result[key] = value
    return result
