"""Extra-network tags in a prompt (`<lora:name:w>`, `<lyco:...>`, `<hypernet:name:w>`): removed from the text
and returned as structured requests, with A1111's argument rules (`extensions-builtin/Lora`, `modules/extra_networks.py`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TAG = re.compile(r"<(\w+):([^>]+)>")
ADAPTER_KINDS = ("lora", "lyco")  # A1111's Lora extension registers `lyco` as an alias of `lora`
KNOWN_KINDS = (*ADAPTER_KINDS, "hypernet")


@dataclass
class ExtraNetwork:
    kind: str
    name: str
    multipliers: dict[str, float | int | None]
    tag: str
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "multipliers": self.multipliers}


def _split_args(args: str) -> tuple[list[str], dict[str, str]]:
    positional, named = [], {}
    for item in args.split(":"):
        parts = item.split("=", 2)
        if len(parts) == 2:
            named[parts[0]] = parts[1]
        else:
            positional.append(item)
    return positional, named


def _number(text: str | None, default, kind=float, problems: list[str] | None = None, what: str = ""):
    if text is None:
        return default
    try:
        return kind(text)
    except ValueError:
        if problems is not None:
            problems.append(f"{what} {text!r} is not a number; using {default}")
        return default


def _adapter(kind: str, positional: list[str], named: dict[str, str], tag: str) -> ExtraNetwork:
    problems: list[str] = []
    pos = lambda i: positional[i] if len(positional) > i else None
    te = _number(named.get("te", pos(1)), 1.0, float, problems, "te multiplier")
    unet = _number(named.get("unet", pos(2)), te, float, problems, "unet multiplier")
    dyn = _number(named.get("dyn", pos(3)), None, int, problems, "dyn")
    multipliers = {"te": te, "unet": unet, "dyn": dyn}
    if "lbw" in named:  # the LoRA Block Weight extension's per-block multipliers
        multipliers["lbw"] = named["lbw"]
    return ExtraNetwork(kind, positional[0] if positional else "", multipliers, tag, problems)


def parse_extra_networks(prompt: str) -> tuple[str, list[ExtraNetwork]]:
    """The prompt without its `<kind:args>` tags, and the tags as requests in order of appearance."""
    found: list[ExtraNetwork] = []

    def take(m: re.Match) -> str:
        kind, args = m.group(1), m.group(2)
        positional, named = _split_args(args)
        if kind in ADAPTER_KINDS:
            found.append(_adapter(kind, positional, named, m.group(0)))
        else:
            problems = [] if kind in KNOWN_KINDS else [f"unknown extra network type {kind!r}"]
            weight = _number(positional[1] if len(positional) > 1 else None, 1.0, float, problems, "multiplier")
            found.append(ExtraNetwork(kind, positional[0] if positional else "", {"weight": weight}, m.group(0), problems))
        return ""

    # A tag ends at a `>`: none can start after the last one, where the regex would try every `<` against the
    # whole rest of the prompt (quadratic on `<a:` repeated), so that tail is kept as it is.
    cut = prompt.rfind(">") + 1
    return _TAG.sub(take, prompt[:cut]) + prompt[cut:], found
