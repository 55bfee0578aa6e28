"""`sd1kit models`: the SD1 anime family tree, model facts, advice, folder scan, fingerprints."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sd1kit.cli.common import add_subcommands
from sd1kit.errors import Sd1kitError


def _models_show(args) -> None:
    from sd1kit.catalog import render
    from sd1kit.catalog.catalog import find

    record = find(args.name)
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(record), indent=2, ensure_ascii=False))
    else:
        print(render.show(record))


def _models_recommend(args) -> None:
    from sd1kit.catalog.advice import recommend

    advice = recommend(args.ram, args.vram, args.use)
    print(json.dumps({"family": advice.family, "pick": advice.pick, "reasons": advice.reasons}, indent=2)
          if args.json else advice.text())


def _models_scan(args) -> None:
    from sd1kit.catalog.advice import scan

    folder = Path(args.folder) if args.folder else Path(os.environ.get("SD1KIT_HOME", ".")) / "models"
    if not folder.is_dir():
        raise Sd1kitError(folder, "no such folder")
    entries = scan(folder, write_yaml=args.write_yaml, missing=True)
    if args.json:
        print(json.dumps([e.as_json() for e in entries], indent=2))
    missing = [e for e in entries if e.state == "not installed"]
    for e in [e for e in entries if e.state != "not installed"] if not args.json else []:
        pred = f"{e.prediction} ({e.prediction_source})" if e.prediction else "-"
        yaml = {"needed": "yaml MISSING (--write-yaml)", "written": "yaml written", "present": "yaml ok"}.get(e.yaml, "")
        print(f"{e.path}\n  {e.kind}, {e.family}, prediction {pred}"
              + (f", catalog {e.catalog}" if e.catalog else "") + (f", hash {e.short_hash}" if e.short_hash else "")
              + (f", {yaml}" if yaml else "") + (", WRONG FILE" if e.state == "wrong file" else "")
              + (f"\n  problem: {e.problem}" if e.problem else ""))
    if missing and not args.json:
        print("known, not installed (sd1kit install ID):")
        for e in missing:
            print(f"  {e.catalog}: {Path(e.path).relative_to(folder.parent) if folder.parent in Path(e.path).parents else e.path}")


def _models_yaml(args) -> None:
    from sd1kit.formats.yaml_config import v1_inference_yaml

    print(v1_inference_yaml(v_prediction=args.prediction == "v"), end="")


def _models_fingerprint(args) -> None:
    from sd1kit.catalog.fingerprint import fingerprint

    result = fingerprint(args.model, args.against, base=args.base)
    print(json.dumps(result.as_json(), indent=2) if args.json else result.summary())


def _models_tree(args) -> None:
    from sd1kit.catalog import render

    if args.mermaid:
        print(render.mermaid())
    elif args.dot:
        print(render.dot())
    elif args.json:
        print(render.as_json())
    else:
        print(render.tree())


# `sd1kit models SUBCOMMAND`; without one, the family tree
MODELS_COMMANDS = {"show": _models_show, "recommend": _models_recommend, "scan": _models_scan, "yaml": _models_yaml,
                   "fingerprint": _models_fingerprint}


def _cmd_models(args) -> int:
    MODELS_COMMANDS.get(getattr(args, "models_command", None), _models_tree)(args)
    return 0


def _add_subcommands(msub) -> None:
    p = msub.add_parser("show", help="everything the catalog knows of one model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = msub.add_parser("recommend", help="which checkpoint to use, following the guide's reasoning")
    p.add_argument("--ram", help="system memory, e.g. 16G")
    p.add_argument("--vram", help="GPU memory, e.g. 4G (leave out for CPU only)")
    p.add_argument("--for", dest="use", choices=("anime", "nsfw", "furry", "qr-code"), default="anime")
    p.add_argument("--json", action="store_true")
    p = msub.add_parser("scan", help="identify every model file in an A1111-style folder")
    p.add_argument("folder", nargs="?", help="default $SD1KIT_HOME/models")
    p.add_argument("--write-yaml", action="store_true", help="write the v-prediction yaml beside models that need one")
    p.add_argument("--json", action="store_true")
    p = msub.add_parser("yaml", help="print the SD1 yaml config (v1-inference, or its v-prediction variant)")
    p.add_argument("--prediction", choices=("epsilon", "v"), default="epsilon")
    p = msub.add_parser("fingerprint", help="what a checkpoint was merged from, by comparing weights with local ones")
    p.add_argument("model")
    p.add_argument("--against", nargs="+", required=True, metavar="CHECKPOINT")
    p.add_argument("--base", help="the common base (default: the candidate closest to all others)")
    p.add_argument("--json", action="store_true")


def add_parser(sub) -> None:
    models = sub.add_parser("models", help="the SD1 anime family tree, model facts, advice, folder scan, fingerprints")
    form = models.add_mutually_exclusive_group()
    form.add_argument("--mermaid", action="store_true", help="the tree as a Mermaid flowchart (the guide's form)")
    form.add_argument("--dot", action="store_true", help="the tree as Graphviz dot")
    form.add_argument("--json", action="store_true", help="every record as JSON")
    models.set_defaults(func=_cmd_models)
    _add_subcommands(add_subcommands(models, dest="models_command"))
