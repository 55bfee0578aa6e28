"""`sd1kit qr`: QR-code art with QR Code Monster: code on grey, generation, scan check, weight sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from sd1kit.pipeline.options import parse_pair
from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.runtime import add_runtime_flags


def _cmd_qr(args) -> int:
    from sd1kit.pipeline.from_picture import resolve_file
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.qr import QRCode, qr_generate, qr_image, scan
    from sd1kit.pipeline.request import GenerationRequest
    from sd1kit.pipeline.save import save_image

    w, h = parse_pair(args.size, "--size") if args.size else (512, 512)
    if args.code_only:
        picture = qr_image(args.text, args.error, args.module_size, args.border, (w, h))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "qr-code.png"
        picture.save(path)
        print(f"wrote {path}; scans: {'yes' if scan(picture) == args.text else 'NO'}")
        return 0
    if not args.controlnet or not args.prompt:
        raise Sd1kitError("qr", "give the prompt and --controlnet (QR Code Monster v2), or --code-only")
    weights = [float(v) for v in args.sweep.split(",")] if args.sweep else [args.weight]
    request = GenerationRequest(model=resolve_file(args.model, "Stable-diffusion")).given(
        "cli", prompt=args.prompt, negative_prompt=args.negative or "", steps=args.steps, cfg_scale=args.cfg,
        seed=args.seed, width=w, height=h, sampler=args.sampler)
    from sd1kit.pipeline.runtime import runtime_from_args

    model = load_model(request.model, runtime=runtime_from_args(args, request=request.with_(controlnets=[args.controlnet])))
    code = QRCode(args.text, args.error, args.module_size, args.border)
    results = qr_generate(code, resolve_file(args.controlnet, "ControlNet"), request, model, weights)
    for r in results:
        path = save_image(r.image.image, r.image.infotext, Path(args.out), r.image.seed, args.prompt)
        print(f"wrote {path}: weight {r.weight:g}, scans: {'yes' if r.scans else 'no'}"
              + (f" (decoded {r.decoded!r})" if r.decoded and not r.scans else ""))
    good = [r.weight for r in results if r.scans]
    print(f"lowest weight that scans: {min(good):g}" if good else "no weight tried gives a picture that scans")
    return 0 if good else 1


def _add_code_flags(p: argparse.ArgumentParser) -> None:
    """What to encode, and how the code is drawn."""
    p.add_argument("text", help="the text or URL to encode")
    p.add_argument("prompt", nargs="?")
    p.add_argument("--controlnet", help="QR Code Monster (v2) file or folder, or its name in models/ControlNet")
    p.add_argument("--negative")
    p.add_argument("--model", help="checkpoint (default: the built-in demo model)")
    p.add_argument("--weight", type=float, default=1.35, help="control weight (default 1.35)")
    p.add_argument("--sweep", help="comma-separated weights, lowest first: stop at the first that scans")
    p.add_argument("--error", default="H", choices=("L", "M", "Q", "H"), help="error correction (default H)")
    p.add_argument("--module-size", type=int, default=16, help="pixels per module (shrunk to fit the size)")
    p.add_argument("--border", type=int, default=4, help="quiet zone in modules")
    p.add_argument("--code-only", action="store_true", help="only write the control image and check it scans")


def _add_generation_flags(p: argparse.ArgumentParser) -> None:
    """The generation: size, sampling, precision, device, output."""
    p.add_argument("--size", default="512x512")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=-1)
    p.add_argument("--sampler", default="DPM++ 2M Karras")
    add_runtime_flags(p)
    p.add_argument("--out", default="outputs")
    p.add_argument("--quiet", action="store_true")


def add_parser(sub) -> None:
    p = sub.add_parser("qr", help="QR-code art with QR Code Monster: code on grey, generation, scan check, weight sweep")
    _add_code_flags(p)
    _add_generation_flags(p)
    p.set_defaults(func=_cmd_qr)
