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


def _strip(args) -> int:
    from sd1kit.metadata.readers import read_picture
    from sd1kit.metadata.strip import strip_picture

    if len(args.pictures) != 1 or not args.out:
        raise Sd1kitError("--strip", "give one picture and --out CLEAN_FILE")
    result = strip_picture(args.pictures[0], args.out)
    kept = "pixels re-encoded" if result.pixels_changed else "image data unchanged"
    print(f"wrote {result.path} (metadata removed, {kept})" + "".join(f"; {n}" for n in result.notes))
    left = read_picture(result.path)
    if left.tool is not None:
        print(f"sd1kit: {result.path}: metadata left that sd1kit could not remove ({left.tool})", file=sys.stderr)
    return 0


def _cmd_info(args) -> int:
    """Each picture's metadata; a picture that cannot be read (or is refused) is one line on stderr, status 2."""
    from sd1kit.metadata.readers import read_picture

    if args.strip:
        return _strip(args)
    status, results = 0, []
    for path in args.pictures:
        try:
            if not Path(path).is_file():
                raise Sd1kitError(path, "a folder, not a picture" if Path(path).is_dir() else "no such file")
            info = read_picture(path)
        except Sd1kitError as e:
            _error(e)
            results.append({"path": str(path), "error": e.message})
            status = 2
            continue
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
    p.add_argument("--strip", action="store_true",
                   help="write a copy without metadata to --out (pixels unchanged, unless stealth metadata in them "
                        "has to be overwritten)")
    p.add_argument("--out", help="output file for --strip")
    p.set_defaults(func=_cmd_info)
