"""`sd1kit prompt`: what an A1111 prompt means: schedule, emphasis, chunks, networks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sd1kit.cli.common import _read_text_arg
from sd1kit.errors import Sd1kitError


def _cmd_prompt(args) -> int:
    from sd1kit.models.tokenizer import clip_tokenizer
    from sd1kit.prompts.describe import describe_prompt
    from sd1kit.prompts.embeddings import load_embedding_dir

    prompt = _read_text_arg(args.text, args.file, "prompt")
    if prompt is None:
        raise Sd1kitError("prompt", "give the prompt as TEXT or with --file")
    negative = _read_text_arg(args.negative, args.negative_file, "negative prompt")
    if args.steps < 1 or (args.hires_steps is not None and args.hires_steps < 1):
        raise Sd1kitError("--steps", "steps must be at least 1")
    tokenizer = clip_tokenizer()
    embeddings = load_embedding_dir(args.embeddings, tokenizer) if args.embeddings else None
    lora_dir = Path(args.lora_dir) if args.lora_dir else None
    result = describe_prompt(prompt, args.steps, tokenizer, negative=negative, hires_steps=args.hires_steps,
                             embeddings=embeddings, emphasis=args.emphasis, comma_backtrack=args.comma_backtrack,
                             lora_dir=lora_dir)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_prompt(result)
    for warning in result["warnings"]:
        print(f"sd1kit: warning: {warning}", file=sys.stderr)
    return 0


def _print_prompt(result: dict) -> None:
    from sd1kit.models.tokenizer import clip_tokenizer

    tok = clip_tokenizer()
    for label, part in (("prompt", result), ("negative", result.get("negative"))):
        if not part:
            continue
        print(f"{label}: {part['token_count']} tokens")
        for entry in part["schedule"]:
            print(f"  until step {entry['until_step']}: {entry['text']!r}")
            for i, chunk in enumerate(entry["chunks"]):
                words = [f"{tok.convert_ids_to_tokens(t) if t else '<emb>'}" + (f"*{w:.3g}" if w != 1.0 else "")
                         for t, w in chunk[1:-1] if t != 49407]
                print(f"    chunk {i + 1}: {' '.join(words)}")
    for net in result["extra_networks"]:
        print(f"extra network: {net['kind']} {net['name']} {net['multipliers']}")
    for emb in result["embeddings"]:
        print(f"embedding: {emb['name']} ({emb['vectors']} vectors, hash {emb['hash']})")


def add_parser(sub) -> None:
    p = sub.add_parser("prompt", help="show what an A1111 prompt means: schedule, emphasis, chunks, networks")
    p.add_argument("text", nargs="?")
    p.add_argument("--file", help="read the prompt from a UTF-8 file")
    p.add_argument("--negative")
    p.add_argument("--negative-file")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--hires-steps", type=int, help="schedule for the hires-fix pass (A1111 1.6+ rule)")
    p.add_argument("--embeddings", help="folder of textual-inversion embeddings")
    p.add_argument("--lora-dir", help="folder of LoRA/LyCORIS files, to warn about names that are not there")
    p.add_argument("--emphasis", choices=("original", "no-norm", "none"), default="original")
    p.add_argument("--comma-backtrack", type=int, default=20, help="A1111's comma_padding_backtrack (0 = off)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_prompt)
