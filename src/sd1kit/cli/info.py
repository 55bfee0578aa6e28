"""`sd1kit info`: the generation metadata of pictures, and a copy without it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sd1kit.cli.common import _error
from sd1kit.errors import Sd1kitError


def _format_info(info) -> str:
    if info.tool is None:
        return f"{info.path}\n  no generation metadata" + "".join(f"\n  warning: {w}" for w in info.warnings)
    lines = [info.path, f"  tool        {info.tool}" + (f" ({info.app})" if info.app else "")]
    lines += [f"  prompt      {info.prompt}".replace("\n", "\n              ")]
    if info.negative_prompt:
        lines += [f"  negative    {info.negative_prompt}".replace("\n", "\n              ")]
    if info.parameters:
        width = max(len(k) for k in info.parameters)
        lines.append("  parameters")
        lines += [f"    {k.ljust(width)}  {v}" for k, v in info.parameters.items()]
    for lora in info.loras:
        lines.append(f"  lora        {lora.name} weight {lora.weight}" + (f" [{lora.hash}]" if lora.hash else ""))
    if info.graph is not None:
        lines.append(f"  graph       ComfyUI, {len(info.graph)} nodes (see --json for the raw graph)")
    lines += [f"  warning     {w}" for w in info.warnings]
    return "\n".join(lines)


def _cmd_info(args) -> int:
    from sd1kit.metadata.readers import read_picture

    if args.strip:
        from sd1kit.metadata.strip import strip_metadata

        if len(args.pictures) != 1 or not args.out:
            raise Sd1kitError("--strip", "give one picture and --out CLEAN_FILE")
        out = strip_metadata(args.pictures[0], args.out)
        print(f"wrote {out} (metadata removed, image data unchanged)")
        left = read_picture(out)
        if left.tool is not None:
            print(f"sd1kit: {out}: metadata in the pixels themselves ({left.tool}, e.g. stealth) cannot be "
                  "stripped without changing them", file=sys.stderr)
        return 0
    status, results = 0, []
    for path in args.pictures:
        if not Path(path).is_file():
            why = "a folder, not a picture" if Path(path).is_dir() else "no such file"
            _error(Sd1kitError(path, why))
            results.append({"path": str(path), "error": why})
            status = 2
            continue
        info = read_picture(path)
        results.append(info.as_json())
        if not args.json:
            print(_format_info(info))
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    return status


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="read generation metadata of pictures (A1111, NovelAI, ComfyUI, InvokeAI, ...)")
    p.add_argument("pictures", nargs="+")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per picture")
    p.add_argument("--strip", action="store_true", help="write a copy without metadata (pixels unchanged) to --out")
    p.add_argument("--out", help="output file for --strip")
    p.set_defaults(func=_cmd_info)
