"""A1111's prompt styles: `styles.csv` beside the models folder (columns name, prompt, negative_prompt), listed by
`/sdapi/v1/prompt-styles` and applied to a payload's prompts by its `styles` field as A1111's
`modules/styles.py` applies them: a style text holding `{prompt}` has it replaced by the prompt, any other is
appended after ", " (empty parts dropped); styles in the payload's order, to the prompt, the negative prompt and
the hires prompts alike."""

from __future__ import annotations

import csv

from sd1kit.errors import Sd1kitError
from sd1kit.server.a1111 import MAX_PROMPT

MAX_STYLES_BYTES = 1 << 20
COLUMNS = (("prompt", "prompt"), ("negative_prompt", "negative_prompt"), ("hr_prompt", "prompt"),
           ("hr_negative_prompt", "negative_prompt"))


def read_styles(state) -> list[dict]:
    """styles.csv's rows, read as data (bounded; a row without a name is skipped)."""
    root = state.config.models_dir.parent if state.config.models_dir else None
    path = root / "styles.csv" if root else None
    if path is None or not path.is_file():
        return []
    if path.stat().st_size > MAX_STYLES_BYTES:
        raise Sd1kitError(path, f"styles file over {MAX_STYLES_BYTES >> 20} MiB")
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        rows = list(csv.DictReader(f))
    return [{"name": r["name"], "prompt": r.get("prompt") or "", "negative_prompt": r.get("negative_prompt") or ""}
            for r in rows if r.get("name")]


def merge_prompt(style: str, prompt: str) -> str:
    if "{prompt}" in style:
        return style.replace("{prompt}", prompt)
    return ", ".join(part for part in (prompt.strip(), style.strip()) if part)


def apply_styles(values: dict, names: list[str], styles: list[dict]) -> dict:
    """The request fields `values` with the named styles applied to their prompts (an unknown name is refused;
    the hires prompts only where the payload has them: otherwise they follow the styled first-pass prompts)."""
    by_name = {s["name"]: s for s in styles}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise Sd1kitError("styles", f"{', '.join(map(repr, missing))} not in styles.csv "
                                    f"({len(by_name)} styles: see /sdapi/v1/prompt-styles)")
    out = dict(values)
    for field, column in COLUMNS:  # the prompt fields and the styles.csv column each takes
        if field.startswith("hr_") and out.get(field) is None:
            continue
        text = out.get(field) or ""
        for name in names:
            text = merge_prompt(by_name[name][column], text)
            if len(text) > MAX_PROMPT:  # a style holding {prompt} twice doubles it each time
                raise Sd1kitError("styles", f"the styled {field} is over {MAX_PROMPT >> 10}K characters")
        out[field] = text
    return out
