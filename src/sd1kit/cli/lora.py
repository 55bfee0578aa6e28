"""`sd1kit lora bake | extract | check`: LoRA / LyCORIS against a model."""

from __future__ import annotations

import json
from pathlib import Path

from sd1kit.cli.common import add_subcommands


def _cmd_lora_bake(args) -> int:
    from sd1kit.adapters.bake import bake, parse_adapter_arg

    result = bake(args.model, [parse_adapter_arg(a) for a in args.adapters], args.out, dtype=args.dtype)
    for report in result.reports:
        print(report.summary())
        for key in report.unused[:20]:
            print(f"  unused: {key}")
        for item in report.mismatched[:20]:
            print(f"  wrong shape: {item}")
    print(f"wrote {result.out}" + (f" and {result.yaml}" if result.yaml else ""))
    return 0


def _cmd_lora_extract(args) -> int:
    from sd1kit.adapters.extract import extract

    stats = extract(args.base, args.tuned, args.out, rank=args.rank, conv_rank=args.conv_rank)
    print(f"wrote {args.out}: {stats['modules']} modules (rank {args.rank}"
          + (f", conv rank {args.conv_rank}" if args.conv_rank else "") + f"), {stats['skipped_same']} layers unchanged")
    return 0


def _cmd_lora_check(args) -> int:
    from sd1kit.adapters.bake import parse_adapter_arg
    from sd1kit.adapters.file import open_adapter
    from sd1kit.adapters.live import adapters_applied
    from sd1kit.adapters.stack import ActiveAdapter, AdapterStack
    from sd1kit.pipeline.model import load_model

    model = load_model(args.model)
    from sd1kit.adapters.live import live_shapes

    active = [ActiveAdapter(open_adapter(p), Path(p).stem, w, w) for p, w in map(parse_adapter_arg, args.adapters)]
    stack = AdapterStack(active, live_shapes(model.modules))
    with adapters_applied(model.modules, stack):
        pass
    if args.json:
        print(json.dumps([r.as_json() for r in stack.reports], indent=2))
    else:
        for report in stack.reports:
            print(report.summary())
            for key in report.unused:
                print(f"  unused: {key}")
            for item in report.mismatched:
                print(f"  wrong shape: {item}")
    return 0


def add_parser(sub) -> None:
    lora = sub.add_parser("lora", help="LoRA / LyCORIS: check against a model, bake into it, extract from two models")
    lsub = add_subcommands(lora, dest="lora_command", required=True)
    p = lsub.add_parser("bake", help="write MODEL with adapters merged in (streamed, atomic)")
    p.add_argument("model")
    p.add_argument("adapters", nargs="+", metavar="ADAPTER[:WEIGHT]")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="cast the output (default: as the base)")
    p.set_defaults(func=_cmd_lora_bake)
    p = lsub.add_parser("extract", help="a LoRA approximating TUNED - BASE (SVD), kohya-compatible")
    p.add_argument("base")
    p.add_argument("tuned")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--conv-rank", type=int, help="also extract the 3x3 convolutions (LoCon) at this rank")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_lora_extract)
    p = lsub.add_parser("check", help="apply adapters to a model and report every key: applied, unused, wrong shape")
    p.add_argument("model")
    p.add_argument("adapters", nargs="+", metavar="ADAPTER[:WEIGHT]")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_lora_check)
