"""The family tree for people and tools: an indented terminal tree with the key facts, Mermaid (the flowchart
form the guide uses, with its node ids and links), Graphviz dot, and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

from sd1kit.catalog.catalog import by_id, catalog, children
from sd1kit.catalog.schema import ModelRecord

EDGE_LABELS = {"merge": "merge", "lycoris-applied": "LyCORIS", "component": "", "fine-tune": "", "version": "",
               "variant": "variant"}


def facts(r: ModelRecord) -> str:
    bits = [r.kind]
    if r.prediction:
        bits.append("v-pred" + (" + ZTSNR" if r.zero_terminal_snr else "") if r.prediction == "v" else "eps")
    if r.settings.clip_skip and r.settings.clip_skip > 1:
        bits.append(f"clip skip {r.settings.clip_skip}")
    if r.settings.cfg_rescale:
        bits.append(f"CFG rescale {r.settings.cfg_rescale}")
    if r.yaml == "v-prediction":
        bits.append("needs yaml")
    if r.released:
        bits.append(r.released)
    if r.recommended:
        bits.append("recommended")
    return ", ".join(bits)


def tree() -> str:
    """Each model under its first parent; further parents are named on the line."""
    records = catalog()
    lines: list[str] = []

    def walk(record: ModelRecord, depth: int, relation: str) -> None:
        extra = [f"{e.relation} of {e.id}" for e in record.parents[1:]]
        label = f"{'  ' * depth}{'└─ ' if depth else ''}{record.name} [{record.id}]"
        how = f" ({relation})" if relation and relation not in ("fine-tune", "version") else ""
        lines.append(f"{label}{how}: {facts(record)}" + (f"; also {', '.join(extra)}" if extra else ""))
        for child, rel in children(record.id):
            if child.parents[0].id == record.id:
                walk(child, depth + 1, rel)

    for root in (r for r in records if not r.parents):
        walk(root, 0, "")
    return "\n".join(lines)


def _mermaid_id(r: ModelRecord) -> str:
    return r.guide_id or r.id


def mermaid() -> str:
    records = catalog()
    lines = ["flowchart TD", "%% Nodes"]
    lines += [f'{_mermaid_id(r)}["{r.name}"]' for r in records]
    lines.append("%% Relationships between models")
    table = by_id()
    for r in records:
        for e in r.parents:
            label = EDGE_LABELS.get(e.relation, e.relation)
            arrow = f"-->|{label}|" if label else "-->"
            lines.append(f"{_mermaid_id(table[e.id])} {arrow} {_mermaid_id(r)}")
    lines.append("%% Clickable links")
    lines += [f'click {_mermaid_id(r)} "{r.links[0]}"' for r in records if r.links]
    lines += ["%% Styling", "classDef no-link fill:#FFF9C4,stroke:#FBC02D,stroke-width:2px;",
              "classDef link fill:#FFF9C4,stroke:#FBC02D,stroke-width:2px,color:#4051b5;"]
    linked = [_mermaid_id(r) for r in records if r.links]
    unlinked = [_mermaid_id(r) for r in records if not r.links]
    if linked:
        lines.append(f"class {','.join(linked)} link;")
    if unlinked:
        lines.append(f"class {','.join(unlinked)} no-link;")
    return "\n".join(lines)


def dot() -> str:
    records = catalog()
    lines = ["digraph sd1 {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fillcolor="#FFF9C4"];']
    for r in records:
        url = f', URL="{r.links[0]}"' if r.links else ""
        lines.append(f'  "{r.id}" [label="{r.name}\\n{facts(r)}"{url}];')
    for r in records:
        for e in r.parents:
            label = EDGE_LABELS.get(e.relation, e.relation)
            lines.append(f'  "{e.id}" -> "{r.id}"' + (f' [label="{label}"]' if label else "") + ";")
    lines.append("}")
    return "\n".join(lines)


def as_json() -> str:
    return json.dumps([asdict(r) for r in catalog()], indent=2, ensure_ascii=False)


def show(r: ModelRecord) -> str:
    lines = [f"{r.name} [{r.id}]" + (f", also called {', '.join(r.aliases)}" if r.aliases else ""), f"  {facts(r)}"]
    if r.author:
        lines.append(f"  author      {r.author}")
    for e in r.parents:
        lines.append(f"  from        {by_id()[e.id].name} ({e.relation})")
    for child, rel in children(r.id):
        lines.append(f"  led to      {child.name} ({rel})")
    for key, value in r.training.items():
        lines.append(f"  training    {key}: {value}")
    if r.prediction:
        lines.append(f"  prediction  {r.prediction}{' (inferred)' if r.confidence == 'inferred' else ''}"
                     + (", zero terminal SNR" if r.zero_terminal_snr else ""))
    if r.yaml:
        lines.append(f"  yaml        {r.yaml}" + ("  (sd1kit models yaml --prediction v)" if r.yaml == "v-prediction" else ""))
    s = r.settings
    settings = [f"clip skip {s.clip_skip}" if s.clip_skip else "", f"CFG {s.cfg}" if s.cfg else "",
                f"CFG rescale {s.cfg_rescale}" if s.cfg_rescale else "", f"{s.steps} steps" if s.steps else "",
                f"samplers {', '.join(s.samplers)}" if s.samplers else "",
                f"{s.resolution[0]}-{s.resolution[1]} px" if s.resolution else "", f"ENSD {s.ensd}" if s.ensd else ""]
    if any(settings):
        lines.append(f"  settings    {'; '.join(x for x in settings if x)}")
    if r.prompt_style:
        lines.append(f"  prompts     {r.prompt_style}" + (f"; quality tags: {r.quality_tags}" if r.quality_tags else ""))
    if r.negative:
        lines.append(f"  negative    {r.negative}")
    if r.adapters:
        lines.append(f"  adapters    {', '.join(by_id()[a].name for a in r.adapters)}")
    for f in r.files:
        hashes = " ".join(x for x in (f"sha256 {f.sha256}" if f.sha256 else "", f"short {f.short}" if f.short else "",
                                      f"legacy {f.legacy}" if f.legacy else "") if x)
        lines.append(f"  file        {f.name}" + (f" ({f.size}, {f.precision})" if f.size and f.precision else "")
                     + (f"  {hashes}" if hashes else "")
                     + (f"  for {f.prediction}-prediction models" if f.prediction else ""))
        if f.source:
            lines.append(f"    source    {f.source}")
    if any(f.source for f in r.files) or r.kind == "setup":
        lines.append(f"  install     sd1kit install {r.id}")
    lines += [f"  link        {link}" for link in r.links]
    lines += [f"  note        {n}" for n in r.notes]
    return "\n".join(lines)
