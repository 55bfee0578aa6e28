"""A1111's infotext ("PNG Info") writer (`modules/processing.py create_infotext`, formats.md §6)."""

from __future__ import annotations

import json
import re

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


def _cut_raw_json(line: str) -> tuple[str, dict]:
    """Take `Key: {...}` / `Key: [...]` (unquoted JSON) out of a parameters line by bracket matching."""
    found = {}
    for key in RAW_JSON_KEYS:
        m = re.search(rf"(?:^|,\s*){re.escape(key)}:\s*([\[{{])", line)
        if not m:
            continue
        start, depth, in_string, escape = m.start(1), 0, False, False
        for i in range(start, len(line)):
            ch = line[i]
            if in_string:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == '"':
                    in_string = False
                continue
            if ch == '"':
                in_string = True
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    try:
                        found[key] = json.loads(line[start:i + 1])
                    except ValueError:
                        found[key] = line[start:i + 1]
                    line = line[:m.start()] + line[i + 1:]
                    break
    return line, found


def parse_infotext(text: str) -> dict:
    """Fields of an A1111 infotext: "Prompt", "Negative prompt" and every parameter (sizes as Key-1 / Key-2)."""
    *lines, last = text.strip().split("\n")
    params_line, raw = _cut_raw_json(last)
    if len(PARAM.findall(params_line)) < 3:
        lines.append(last)
        params_line, raw = "", {}
    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        (negative if in_negative else prompt).append(line)
    result: dict = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in PARAM.findall(params_line):
        value = _unquote(value)
        m = IMAGE_SIZE.match(value)
        if m:
            result[f"{key}-1"], result[f"{key}-2"] = m.group(1), m.group(2)
        else:
            result[key] = value
    result.update(raw)
    return result
