"""`sd1kit generate`: txt2img / img2img with A1111's semantics, a PNG with the infotext."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from sd1kit.adapters.hypernetwork import hypernetwork_folder
from sd1kit.adapters.library import models_lora_dir
from sd1kit.pipeline.option_surfaces import add_cli_flags
from sd1kit.pipeline.runtime import add_runtime_flags
from sd1kit.errors import Sd1kitError


def _generate_request(args):
    """The request the command line asks for: the picture's (--from), then the flags given, each recorded with its
    source; files named by the flags resolved. Nothing is decided here: the plan resolves the rest."""
    from sd1kit.pipeline.from_picture import read_picture_parameters, request_from_infotext, resolve_file
    from sd1kit.pipeline.option_surfaces import options_from_cli
    from sd1kit.pipeline.request import GenerationRequest

    request, fields = GenerationRequest(), None
    if args.from_picture:
        request, fields = request_from_infotext(read_picture_parameters(args.from_picture), args.from_picture)
    given = options_from_cli(args)
    if args.prompt is not None:
        given["prompt"] = args.prompt
    if args.negative is not None:
        given["negative_prompt"] = args.negative
    if any(getattr(args, o.attr) is not None for o in _hires_options()):
        given["enable_hr"] = True
    request = request.given("cli", **given)
    model_path = resolve_file(args.model, "Stable-diffusion")
    return request.with_(**_resources(args, fields, model_path)), fields


def _hires_options():
    from sd1kit.pipeline.options import OPTIONS

    return [o for o in OPTIONS if o.cli and o.cli.startswith("--hires-")]


def _resources(args, fields: dict | None, model_path) -> dict:
    """The files the request names: checkpoint, VAE, ControlNets, init image and mask, folders."""
    from sd1kit.pipeline.from_picture import find_checkpoint, find_vae, models_dir, resolve_file

    out: dict = {}
    root = Path(args.models_dir) if args.models_dir else None
    if fields is not None:
        if model_path is None:
            model_path = find_checkpoint(fields.get("Model"), fields.get("Model hash"),
                                         root / "Stable-diffusion" if root else models_dir())
        if args.vae is None and (fields.get("VAE") or fields.get("VAE hash")):
            out["vae"] = str(find_vae(fields.get("VAE"), fields.get("VAE hash"),
                                      root / "VAE" if root else models_dir("VAE")))
        units = _picture_control_units(fields, root, args)
        if units:
            out["controlnets"] = units
    out["model"] = str(model_path) if model_path else None
    if args.vae:
        out["vae"] = resolve_file(args.vae, "VAE")
    if args.controlnet:
        out["controlnets"] = _control_units(args)
    for flag, attr in (("init", "init_image"), ("mask", "mask_image")):
        if getattr(args, flag):
            out[attr] = Path(getattr(args, flag))
    if args.embeddings:
        out["embeddings_dir"] = args.embeddings
    if args.taesd:
        out["taesd"] = args.taesd
    if args.lora_dir:
        out["lora_dir"] = args.lora_dir
    elif root and models_lora_dir(root):
        out["lora_dir"] = models_lora_dir(root)
    if root:
        out["hypernetwork_dir"] = str(hypernetwork_folder(root))
        out["upscaler_models_dir"] = str(root)
    return out


def _nth(values, i, default):
    """The i-th value of a repeated option, the last one given for later units, else the default."""
    if not values:
        return default
    return values[min(i, len(values) - 1)]


def _control_units(args) -> list:
    from sd1kit.pipeline.controlnet import ControlUnit
    from sd1kit.pipeline.from_picture import resolve_file

    images = args.control_image or []
    if len(images) < len(args.controlnet):
        raise Sd1kitError("--control-image", f"{len(args.controlnet)} ControlNets but {len(images)} control images")
    units = []
    for i, model in enumerate(args.controlnet):
        unit = ControlUnit(resolve_file(model, "ControlNet"), images[i], _nth(args.control_module, i, "none"),
                           _nth(args.control_weight, i, 1.0), _nth(args.control_start, i, 0.0),
                           _nth(args.control_end, i, 1.0), _nth(args.control_mode, i, "Balanced"),
                           _nth(args.control_resize, i, "Crop and Resize"), args.pixel_perfect,
                           guess_mode=args.guess_mode)
        unit.validate()
        units.append(unit)
    return units


def _picture_control_units(fields: dict, root, args) -> list:
    """The picture's `ControlNet N` units, their models found in models/ControlNet; images from --control-image."""
    from sd1kit.pipeline.controlnet import unit_from_infotext
    from sd1kit.pipeline.from_picture import find_model_file, models_dir

    keys = sorted((k for k in fields if re.fullmatch(r"ControlNet \d+", k)), key=lambda k: int(k.split()[1]))
    if not keys or args.controlnet:
        return []
    folder = root / "ControlNet" if root else models_dir("ControlNet")
    images = args.control_image or []
    units = []
    for i, key in enumerate(keys):
        unit = unit_from_infotext(fields[key], lambda name, tag: find_model_file(name, tag, folder, "ControlNet"))
        if i >= len(images):
            raise Sd1kitError("--control-image", f"the picture used {key} ({Path(unit.model).name}); give its "
                                                 "control image with --control-image (pictures do not carry it)")
        unit.image = images[i]
        units.append(unit)
    return units


def _cmd_generate(args) -> int:
    from sd1kit.pipeline.plan import plan
    from sd1kit.sampling.registry import resolve_sampler

    from sd1kit.pipeline.runtime import runtime_from_args

    request, fields = _generate_request(args)
    resolve_sampler(request.sampler, request.schedule)  # a bad name fails before any model is loaded
    runtime = runtime_from_args(args, fields, request=request)
    the_plan = plan(request, _load(args, request, runtime))
    if args.dry_run:
        print(json.dumps(the_plan.as_json(), indent=2, ensure_ascii=False))
        return 0
    return _run(args, the_plan)


def _load(args, request, runtime):
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.runtime import slow_precision_note

    for note in (*runtime.notes, slow_precision_note(runtime)):
        if note and not args.quiet:
            print(f"sd1kit: {note}", file=sys.stderr)
    # an explicit prediction type spares the probe; the plan decides either way
    return load_model(request.model, prediction=request.prediction, zero_terminal_snr=request.zero_terminal_snr,
                      runtime=runtime)


def _run(args, the_plan) -> int:
    import signal

    from tqdm import tqdm

    from sd1kit.pipeline.generate import run
    from sd1kit.pipeline.save import save_image

    stop = {"asked": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(asked=True))
    total = sum(p.steps for p in the_plan.passes) * the_plan.request.batch_count
    try:
        with tqdm(total=total, unit="step", file=sys.stderr, disable=args.quiet) as bar:
            result = run(the_plan, callback=lambda i, sigma, latent: bar.update(1), should_stop=lambda: stop["asked"])
    finally:
        signal.signal(signal.SIGINT, previous)
    for warning in result.warnings:
        print(f"sd1kit: warning: {warning}", file=sys.stderr)
    for report in result.adapters:
        if not args.quiet:
            print(f"sd1kit: LoRA {report.summary()}", file=sys.stderr)
    for item in result.images:
        path = save_image(item.image, item.infotext, Path(args.out), item.seed, the_plan.request.prompt, args.format)
        print(f"wrote {path}" + (" (interrupted)" if item.interrupted else ""))
    return 130 if stop["asked"] else 0


def _add_source_flags(p: argparse.ArgumentParser, picture: bool = True) -> None:
    """Where the prompt, the picture to redo (`picture`: --from) and the model files come from."""
    if picture:
        p.add_argument("--from", dest="from_picture", metavar="PICTURE",
                       help="regenerate from a picture's A1111 parameters (other options override them)")
    else:
        p.set_defaults(from_picture=None)
    p.add_argument("--models-dir", help="A1111-style models folder: Stable-diffusion/, VAE/ (--from), Lora/, "
                                        "hypernetworks/, ESRGAN/ and the other upscaler folders "
                                        "(default $SD1KIT_HOME/models)")
    p.add_argument("--vae", help="an external VAE (.pt / .ckpt / .safetensors), or its name in models/VAE")
    p.add_argument("--embeddings", help="textual-inversion folder (default $SD1KIT_HOME/embeddings)")
    p.add_argument("--lora-dir", help="LoRA/LyCORIS folder for <lora:...> tags (default $SD1KIT_HOME/models/Lora "
                                      "and models/LyCORIS)")
    p.add_argument("--negative")
    p.add_argument("--model", help="checkpoint file or diffusers folder, or a name / short hash in "
                                   "$SD1KIT_HOME/models/Stable-diffusion (default: the built-in demo model)")
    p.add_argument("--init", help="init image for img2img")
    p.add_argument("--mask", help="inpainting mask (white = repaint)")
    p.add_argument("--taesd", help="TAESD decoder weights (taesd_decoder.pth / .safetensors)")


def _add_controlnet_flags(p: argparse.ArgumentParser) -> None:
    """ControlNet units: each repeated option gives one value per --controlnet."""
    p.add_argument("--controlnet", action="append", metavar="FILE",
                   help="a ControlNet (file, diffusers folder, or a name in models/ControlNet); repeat for several")
    p.add_argument("--control-image", action="append", metavar="IMG", help="its control image (one per --controlnet)")
    p.add_argument("--control-module", action="append", choices=("none", "invert", "canny", "binary", "scribble_xdog"),
                   help="preprocessor (default none)")
    p.add_argument("--control-weight", action="append", type=float)
    p.add_argument("--control-start", action="append", type=float, help="guidance start, fraction of the steps")
    p.add_argument("--control-end", action="append", type=float, help="guidance end, fraction of the steps")
    p.add_argument("--control-mode", action="append",
                   choices=("Balanced", "My prompt is more important", "ControlNet is more important"))
    p.add_argument("--control-resize", action="append", choices=("Just Resize", "Crop and Resize", "Resize and Fill"))
    p.add_argument("--pixel-perfect", action="store_true")
    p.add_argument("--guess-mode", action="store_true")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """Device, precision, backend and output."""
    add_runtime_flags(p)
    p.add_argument("--out", default="outputs")
    p.add_argument("--format", choices=("png", "jpg", "webp"), default="png")
    p.add_argument("--dry-run", action="store_true", help="print the plan as JSON (every setting with its source, "
                                                          "the passes, the modifiers, the infotext) and stop")
    p.add_argument("--quiet", action="store_true")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="txt2img / img2img with A1111's semantics; PNG with the infotext")
    p.add_argument("prompt", nargs="?")
    _add_source_flags(p)
    add_cli_flags(p)  # every generation option, from the option table
    _add_controlnet_flags(p)
    _add_run_flags(p)
    p.set_defaults(func=_cmd_generate)
