"""`sd1kit inspect` and `sd1kit convert`: what a model file is, and a clean .safetensors of it."""

from __future__ import annotations

import argparse
import json
import sys

from sd1kit.cli.common import _error
from sd1kit.errors import Sd1kitError


def _cmd_inspect(args) -> int:
    from sd1kit.report import format_human, inspect_path

    status, results = 0, []
    for path in args.paths:
        try:
            ins = inspect_path(path, prediction=args.prediction, ztsnr=args.ztsnr, hashes=not args.no_hash)
        except Sd1kitError as e:
            _error(e)
            results.append({"path": str(path), "error": e.message})
            status = 2
            continue
        results.append(ins.as_json())
        if args.probe:
            results[-1]["probe"] = _probe(ins)
        if not args.json:
            print(format_human(ins))
            if args.probe:
                print(_format_probe(results[-1]["probe"]))
        if ins.refusal:
            print(f"sd1kit: {path}: {ins.refusal}", file=sys.stderr)
            status = 2  # refused: unsafe, or not an SD1-family file (the report above says why)
    if args.json:
        print(json.dumps(results, indent=2))
    return status


def _probe(ins) -> dict | None:
    """The v-prediction probe's verdict on a checkpoint's weights (None for anything else)."""
    if ins.refusal or ins.detection.kind != "checkpoint" or not ins.detection.components["unet"]["present"] \
            or not ins.detection.components["vae"]["present"]:
        return None
    import torch

    from sd1kit.models.build import load_modules
    from sd1kit.pipeline.model import place_modules, probe_modules

    modules = load_modules(ins.source.load_state_dict(), where=str(ins.source.path))
    return probe_modules(place_modules(modules, torch.device("cpu"), torch.float32, low_memory=True)).as_json()


def _format_probe(probe: dict | None) -> str:
    if probe is None:
        return "  probe       not a runnable checkpoint"
    ztsnr = {True: ", zero terminal SNR fits", False: ", no zero terminal SNR", None: ""}[probe["zero_terminal_snr"]]
    return f"  probe       {probe['prediction']} (confidence {probe['confidence']:.2f}{ztsnr}): {probe['reason']}"


def _cmd_convert(args) -> int:
    from sd1kit.convert import convert

    result = convert(args.input, args.output, dtype=args.dtype, ema=args.ema, prediction=args.prediction,
                     ztsnr=args.ztsnr, markers=args.markers)
    print(f"wrote {result.out} ({result.tensors} tensors)" + (f" and {result.yaml}" if result.yaml else ""))
    return 0


def _prediction_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prediction", choices=("epsilon", "v"), help="override the detected prediction type")
    p.add_argument("--ztsnr", action=argparse.BooleanOptionalAction, default=None,
                   help="override zero-terminal-SNR detection")


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="identify model files: kind, family, prediction, hashes, safety")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument("--no-hash", action="store_true", help="skip hashing (header facts only)")
    p.add_argument("--probe", action="store_true",
                   help="run the UNet on fixed noised inputs to tell epsilon from v-prediction by the weights")
    _prediction_args(p)
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("convert", help="convert a checkpoint to a clean .safetensors")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"))
    p.add_argument("--ema", choices=("use", "drop", "keep"), default="drop",
                   help="use: run with the EMA weights; drop: discard them (default); keep: copy them")
    p.add_argument("--markers", action="store_true", help="also write v_pred / ztsnr marker keys")
    _prediction_args(p)
    p.set_defaults(func=_cmd_convert)
