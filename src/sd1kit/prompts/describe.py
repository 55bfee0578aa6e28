"""What a prompt means, as data: extra networks taken out, A1111's schedule, attention and chunks per step.
This is what `sd1kit prompt --json` prints."""

from __future__ import annotations

from pathlib import Path

from sd1kit.prompts.attention import parse_prompt_attention
from sd1kit.prompts.chunks import build_chunks
from sd1kit.prompts.compose import split_and
from sd1kit.prompts.embeddings import EmbeddingDatabase
from sd1kit.prompts.extra_networks import ADAPTER_KINDS, ExtraNetwork, parse_extra_networks
from sd1kit.prompts.schedule import prompt_schedule



def find_adapter_file(folder: Path, name: str) -> Path | None:
    """A LoRA/LyCORIS file named `name` under `folder`, found as generation finds it (adapters.library)."""
    from sd1kit.adapters.library import find_adapter
    from sd1kit.errors import Sd1kitError

    try:
        return find_adapter(name, [folder]) if name else None
    except Sd1kitError:
        return None


def _describe_text(text: str, steps: int, hires_steps: int | None, tokenizer, embeddings, emphasis: str,
                   comma_backtrack: int, used: dict) -> tuple[list[dict], int]:
    schedule, token_count = [], 0
    for until, step_text in prompt_schedule(text, steps, hires_steps):
        chunks, count = build_chunks(step_text, tokenizer, embeddings, emphasis, comma_backtrack)
        token_count = max(token_count, count)
        for chunk in chunks:
            for fix in chunk.fixes:
                used.setdefault(fix.name, embeddings.embeddings[fix.name])
        schedule.append({"until_step": until, "text": step_text, "attention": parse_prompt_attention(step_text),
                         "chunks": [c.pairs() for c in chunks]})
    return schedule, token_count


def _network_warnings(networks: list[ExtraNetwork], lora_dir: Path | None) -> list[str]:
    warnings = []
    for net in networks:
        warnings += [f"{net.tag}: {p}" for p in net.problems]
        if net.kind in ADAPTER_KINDS and lora_dir is not None and find_adapter_file(lora_dir, net.name) is None:
            warnings.append(f"{net.tag}: no LoRA named {net.name!r} in {lora_dir}; it is ignored")
    return warnings


def describe_prompt(prompt: str, steps: int, tokenizer, negative: str | None = None, hires_steps: int | None = None,
                    embeddings: EmbeddingDatabase | None = None, emphasis: str = "original",
                    comma_backtrack: int = 20, lora_dir: Path | None = None) -> dict:
    used: dict = {}
    text, networks = parse_extra_networks(prompt)
    schedule, count = _describe_text(text, steps, hires_steps, tokenizer, embeddings, emphasis, comma_backtrack, used)
    result = {
        "prompt": prompt, "steps": steps, "hires_steps": hires_steps, "schedule": schedule, "token_count": count,
        "extra_networks": [n.as_json() for n in networks],
        "warnings": _network_warnings(networks, lora_dir),
    }
    parts = split_and(text)
    if len(parts) > 1:
        result["composable"] = [{"text": t, "weight": w, "schedule": prompt_schedule(t, steps, hires_steps)}
                                for t, w in parts]
    if negative is not None:
        neg_text, neg_networks = parse_extra_networks(negative)
        neg_schedule, neg_count = _describe_text(neg_text, steps, hires_steps, tokenizer, embeddings, emphasis,
                                                 comma_backtrack, used)
        result["negative"] = {"prompt": negative, "schedule": neg_schedule, "token_count": neg_count,
                              "extra_networks": [n.as_json() for n in neg_networks]}
        result["warnings"] += _network_warnings(neg_networks, lora_dir)
    result["embeddings"] = [{"name": e.name, "vectors": e.vectors, "hash": e.short_hash, "path": str(e.path)}
                            for e in used.values()]
    if embeddings is not None:
        result["warnings"] += [f"{path}: skipped: {why}" for path, why in embeddings.skipped.items()]
    return result
