"""The `sd1kit` command line: a thin shell over the library. Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

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
            status = max(status, 1)
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


def _cmd_merge(args) -> int:
    from sd1kit.merge.recipe import load_recipe, short_recipe
    from sd1kit.merge.run import recipe_from_output

    if sum(bool(x) for x in (args.recipe, args.recipe_from, args.models)) != 1:
        raise Sd1kitError("merge", "give models (A B [C]), --recipe FILE or --recipe-from MERGED_FILE")
    if args.recipe:
        recipe = load_recipe(args.recipe)
    elif args.recipe_from:
        search = [Path(args.models_dir) / f for f in ("Stable-diffusion", "VAE", "Lora", "LyCORIS")] \
            if args.models_dir else []
        recipe = recipe_from_output(args.recipe_from, search, force=args.force)
    else:
        from sd1kit.adapters.bake import parse_adapter_arg

        components = {c: v for c, v in (("text_encoder", args.te_from), ("unet", args.unet_from)) if v}
        recipe = short_recipe(args.models, args.method, {"alpha": args.alpha, "beta": args.beta},
                              blocks=args.blocks, adapters=[parse_adapter_arg(a) for a in args.bake or []],
                              vae=args.vae, components=components, dtype=args.dtype, force=args.force)
    if args.dtype:
        recipe.dtype = args.dtype
    recipe.force = recipe.force or args.force
    if args.dry_run:
        print(json.dumps(recipe.as_dict(), indent=2))
        return 0
    if not args.out:
        raise Sd1kitError("--out", "give the output file")
    from tqdm import tqdm

    from sd1kit.merge.run import Merger

    merger = Merger(recipe, args.out)  # inputs opened and checked before any progress bar
    with tqdm(unit="key", file=sys.stderr, disable=args.quiet) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        result = merger.run(progress)
    for warning in result.warnings:
        print(f"sd1kit: warning: {warning}", file=sys.stderr)
    print(f"wrote {result.out} ({result.keys} tensors" + (f", {result.prediction}-prediction" if result.prediction
                                                          else "") + ")" + (f" and {result.yaml}" if result.yaml else ""))
    return 0


def _read_text_arg(text: str | None, file: str | None, what: str) -> str | None:
    if file is None:
        return text
    try:
        return Path(file).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise Sd1kitError(file, f"{what} file is not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise Sd1kitError(file, f"cannot read {what} file ({e.strerror})") from None


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


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        return w, h
    except ValueError:
        raise Sd1kitError("--size", f"expected WIDTHxHEIGHT, e.g. 512x768, not {text!r}") from None


# CLI option -> GenerationRequest attribute; an option left out keeps the request's (or the picture's) value
GENERATE_OPTIONS = {
    "negative": "negative_prompt", "sampler": "sampler", "schedule": "schedule", "steps": "steps", "cfg": "cfg_scale",
    "cfg_rescale": "cfg_rescale", "seed": "seed", "subseed": "subseed", "subseed_strength": "subseed_strength",
    "clip_skip": "clip_skip", "batch_size": "batch_size", "batch_count": "batch_count", "eta": "eta",
    "ensd": "ensd", "rng": "rng", "prediction": "prediction", "ztsnr": "zero_terminal_snr",
    "denoise": "denoising_strength", "hires_scale": "hr_scale", "hires_upscaler": "hr_upscaler",
    "hires_steps": "hr_steps", "hires_denoise": "hr_denoising_strength", "hires_sampler": "hr_sampler",
    "hires_schedule": "hr_schedule", "hires_prompt": "hr_prompt", "hires_negative": "hr_negative_prompt",
    "mask_blur": "mask_blur", "masked_content": "masked_content", "mask_weight": "mask_weight",
    "mask_padding": "inpaint_padding", "vae_decoder": "vae_decoder", "taesd": "taesd",
    "deepcache": "deepcache", "token_merging": "token_merging",
}


def _generate_request(args):
    from sd1kit.pipeline.from_picture import (
        find_checkpoint, find_vae, models_dir, read_picture_parameters, request_from_infotext, resolve_file,
    )
    from sd1kit.demo import demo_model
    from sd1kit.pipeline.model import native_size
    from sd1kit.pipeline.request import GenerationRequest

    request, model_path = GenerationRequest(), resolve_file(args.model, "Stable-diffusion")
    if args.from_picture:
        request, fields = request_from_infotext(read_picture_parameters(args.from_picture), args.from_picture)
        root = Path(args.models_dir) if args.models_dir else None
        if model_path is None:
            model_path = find_checkpoint(fields.get("Model"), fields.get("Model hash"),
                                         root / "Stable-diffusion" if root else models_dir())
        if args.vae is None and (fields.get("VAE") or fields.get("VAE hash")):
            found = find_vae(fields.get("VAE"), fields.get("VAE hash"), root / "VAE" if root else models_dir("VAE"))
            request = request.with_(vae=str(found))
        units = _picture_control_units(fields, root, args)
        if units:
            request = request.with_(controlnets=units)
    changes = {attr: getattr(args, opt) for opt, attr in GENERATE_OPTIONS.items() if getattr(args, opt) is not None}
    if args.prompt is not None:
        changes["prompt"] = args.prompt
    if args.size is not None:
        changes["width"], changes["height"] = _parse_size(args.size)
    elif not args.from_picture and not args.init:
        native = native_size(model_path or demo_model())
        if native:
            changes["width"], changes["height"] = native
    if args.init:
        changes["init_image"] = Path(args.init)
    if args.vae:
        changes["vae"] = resolve_file(args.vae, "VAE")
    if args.embeddings:
        changes["embeddings_dir"] = args.embeddings
    if args.lora_dir:
        changes["lora_dir"] = args.lora_dir
    elif args.models_dir and (Path(args.models_dir) / "Lora").is_dir():
        changes["lora_dir"] = str(Path(args.models_dir) / "Lora")
    if args.mask:
        changes["mask_image"] = Path(args.mask)
    if args.tiled_vae:
        changes["tiled_vae"] = True
    if args.invert_mask:
        changes["invert_mask"] = True
    if args.only_masked:
        changes["inpaint_full_res"] = True
    if args.hires_resize is not None:
        changes["hr_resize"] = _parse_size(args.hires_resize)
    if args.hires or any(getattr(args, o) is not None for o in GENERATE_OPTIONS if o.startswith("hires_")) \
            or args.hires_resize is not None:
        changes["enable_hr"] = True
    if args.controlnet:
        changes["controlnets"] = _control_units(args)
    request = request.with_(**changes, model=str(model_path) if model_path else None)
    if request.init_image is None:
        request = request.with_(denoising_strength=GenerationRequest.denoising_strength)
    return request


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
    import signal

    from tqdm import tqdm

    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.save import save_image
    from sd1kit.sampling.registry import resolve_sampler

    request = _generate_request(args)
    if request.steps < 1 or request.batch_size < 1 or request.batch_count < 1:
        raise Sd1kitError("--steps", "steps, batch size and batch count must be at least 1")
    resolve_sampler(request.sampler, request.schedule)  # a bad name fails before any model is loaded
    request = _catalog_settings(request, args)
    import torch

    from sd1kit.pipeline.device import cpu_has_bf16, pick_device, pick_dtype

    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    if device == "cpu" and dtype != torch.float32 and not cpu_has_bf16() and not args.quiet:
        print(f"sd1kit: this CPU has no bf16/fp16 dot products: {args.dtype} runs about 50x slower than fp32 here "
              "(bench/perf.py); --low-memory gives 16-bit weights with fp32 compute", file=sys.stderr)
    model = load_model(request.model, device=device, dtype=dtype, prediction=request.prediction,
                       zero_terminal_snr=request.zero_terminal_snr, low_memory=args.low_memory)
    stop = {"asked": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(asked=True))
    try:
        with tqdm(total=request.steps * request.batch_count, unit="step", file=sys.stderr, disable=args.quiet) as bar:
            result = generate(request, model, callback=lambda i, sigma, latent: bar.update(1),
                              should_stop=lambda: stop["asked"])
    finally:
        signal.signal(signal.SIGINT, previous)
    for warning in result.warnings:
        print(f"sd1kit: warning: {warning}", file=sys.stderr)
    for report in result.adapters:
        if not args.quiet:
            print(f"sd1kit: LoRA {report.summary()}", file=sys.stderr)
    for item in result.images:
        path = save_image(item.image, item.infotext, Path(args.out), item.seed, request.prompt, args.format)
        print(f"wrote {path}" + (" (interrupted)" if item.interrupted else ""))
    return 130 if stop["asked"] else 0


def _catalog_settings(request, args):
    """A checkpoint the catalog knows gets its settings where the user (or the picture) set none, said aloud."""
    from sd1kit.catalog.advice import apply_settings, identify

    known = identify(request.model)
    if known is None:
        return request
    explicit = {attr for opt, attr in GENERATE_OPTIONS.items() if getattr(args, opt) is not None}
    if args.from_picture:
        explicit |= {"clip_skip", "cfg_rescale"}  # the picture says what was used
    request, message = apply_settings(request, known[0], explicit)
    if message and not args.quiet:
        print(f"sd1kit: {message}", file=sys.stderr)
    return request


def _cmd_models(args) -> int:
    from sd1kit.catalog import render
    from sd1kit.catalog.catalog import find

    command = getattr(args, "models_command", None)
    if command == "show":
        record = find(args.name)
        if args.json:
            from dataclasses import asdict

            print(json.dumps(asdict(record), indent=2, ensure_ascii=False))
        else:
            print(render.show(record))
    elif command == "recommend":
        from sd1kit.catalog.advice import recommend

        advice = recommend(args.ram, args.vram, args.use)
        print(json.dumps({"family": advice.family, "pick": advice.pick, "reasons": advice.reasons}, indent=2)
              if args.json else advice.text())
    elif command == "scan":
        from sd1kit.catalog.advice import scan

        folder = Path(args.folder) if args.folder else Path(os.environ.get("SD1KIT_HOME", ".")) / "models"
        if not folder.is_dir():
            raise Sd1kitError(folder, "no such folder")
        entries = scan(folder, write_yaml=args.write_yaml)
        if args.json:
            print(json.dumps([e.as_json() for e in entries], indent=2))
        for e in entries if not args.json else []:
            pred = f"{e.prediction} ({e.prediction_source})" if e.prediction else "-"
            yaml = {"needed": "yaml MISSING (--write-yaml)", "written": "yaml written", "present": "yaml ok"}.get(e.yaml, "")
            print(f"{e.path}\n  {e.kind}, {e.family}, prediction {pred}"
                  + (f", catalog {e.catalog}" if e.catalog else "") + (f", hash {e.short_hash}" if e.short_hash else "")
                  + (f", {yaml}" if yaml else "") + (f"\n  problem: {e.problem}" if e.problem else ""))
    elif command == "yaml":
        from sd1kit.formats.yaml_config import v1_inference_yaml

        print(v1_inference_yaml(v_prediction=args.prediction == "v"), end="")
    elif command == "fingerprint":
        from sd1kit.catalog.fingerprint import fingerprint

        result = fingerprint(args.model, args.against, base=args.base)
        print(json.dumps(result.as_json(), indent=2) if args.json else result.summary())
    elif args.mermaid:
        print(render.mermaid())
    elif args.dot:
        print(render.dot())
    elif args.json:
        print(render.as_json())
    else:
        print(render.tree())
    return 0


def _cmd_qr(args) -> int:
    from sd1kit.pipeline.from_picture import resolve_file
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.qr import qr_generate, qr_image, scan
    from sd1kit.pipeline.request import GenerationRequest
    from sd1kit.pipeline.save import save_image

    w, h = _parse_size(args.size) if args.size else (512, 512)
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
    request = GenerationRequest(prompt=args.prompt, negative_prompt=args.negative or "", steps=args.steps,
                                cfg_scale=args.cfg, seed=args.seed, width=w, height=h, sampler=args.sampler,
                                model=resolve_file(args.model, "Stable-diffusion"))
    request = _catalog_settings(request, argparse.Namespace(**{**vars(args), "from_picture": None,
                                                               **{o: None for o in GENERATE_OPTIONS if not hasattr(args, o)}}))
    from sd1kit.pipeline.device import pick_device, pick_dtype

    device = pick_device(args.device)
    model = load_model(request.model, device=device, dtype=pick_dtype(args.dtype, device))
    results = qr_generate(args.text, resolve_file(args.controlnet, "ControlNet"), request, model, weights,
                          args.error, args.module_size, args.border)
    for r in results:
        path = save_image(r.image.image, r.image.infotext, Path(args.out), r.image.seed, args.prompt)
        print(f"wrote {path}: weight {r.weight:g}, scans: {'yes' if r.scans else 'no'}"
              + (f" (decoded {r.decoded!r})" if r.decoded and not r.scans else ""))
    good = [r.weight for r in results if r.scans]
    print(f"lowest weight that scans: {min(good):g}" if good else "no weight tried gives a picture that scans")
    return 0 if good else 1


def _cmd_serve(args) -> int:
    from sd1kit.server.app import ServerConfig, check_bind, create_app

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise Sd1kitError("--auth", "expected user:password")
        auth = (user, password)
    check_bind(args.host, auth, args.insecure_no_auth)
    root = Path(args.models_dir) if args.models_dir else Path(os.environ.get("SD1KIT_HOME", ".")) / "models"
    config = ServerConfig(root if root.is_dir() else None, auth, args.queue, args.device, args.dtype, args.model)
    import uvicorn

    print(f"sd1kit serve: http://{args.host}:{args.port}/ (API: /sdapi/v1, docs: /docs)", file=sys.stderr)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_tiny_model(args) -> int:
    from sd1kit.dev.tiny import write_tiny_model

    path = write_tiny_model(args.output, layout=args.layout, prediction=args.prediction, ztsnr=args.ztsnr,
                            markers=args.markers, seed=args.seed)
    print(f"wrote {path}")
    return 0


DEMO_PROMPTS = ("red circle, blue background", "yellow triangle, purple background",
                "white square, green background")


def _cmd_demo(args) -> int:
    """The main job on a fresh machine: draw with the built-in demo model and check each picture against its prompt,
    then inspect and convert tiny models written as the real distributions write them."""
    from sd1kit.convert import convert
    from sd1kit.demo.checker import score
    from sd1kit.dev.tiny import write_tiny_model
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.model import load_model
    from sd1kit.pipeline.request import GenerationRequest
    from sd1kit.pipeline.save import save_png
    from sd1kit.report import format_human, inspect_path

    model = load_model(None)
    for i, prompt in enumerate(DEMO_PROMPTS):
        request = GenerationRequest(prompt=prompt, width=64, height=64, steps=20, seed=i + 1)
        item = generate(request, model).images[0]
        path = save_png(item.image, item.infotext, Path(args.out), item.seed, prompt)
        verdict = score(item.image, prompt)
        found = ", ".join(f"{k} {'ok' if ok else 'WRONG: ' + verdict.found.get(k, 'nothing')}"
                          for k, ok in verdict.checks.items())
        print(f"wrote {path}\n{item.infotext}\nthe content checker sees: {found}\n")
    with tempfile.TemporaryDirectory(prefix="sd1kit-demo-") as tmp:
        model = write_tiny_model(Path(tmp) / "tiny-easyfluff.safetensors", layout="easyfluff")
        print(format_human(inspect_path(model, use_cache=False)))
        nai = write_tiny_model(Path(tmp) / "tiny-nai.ckpt", layout="nai")
        print(format_human(inspect_path(nai, use_cache=False)))
        out = convert(nai, Path(tmp) / "tiny-nai-fp16.safetensors", dtype="fp16")
        print(f"converted {nai.name} -> {out.out.name}")
        print(format_human(inspect_path(out.out, use_cache=False)))
    return 0


def _prediction_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prediction", choices=("epsilon", "v"), help="override the detected prediction type")
    p.add_argument("--ztsnr", action=argparse.BooleanOptionalAction, default=None,
                   help="override zero-terminal-SNR detection")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sd1kit", description="Stable Diffusion 1 anime checkpoints, safely.")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("generate", help="txt2img / img2img with A1111's semantics; PNG with the infotext")
    p.add_argument("prompt", nargs="?")
    p.add_argument("--from", dest="from_picture", metavar="PICTURE",
                   help="regenerate from a picture's A1111 parameters (other options override them)")
    p.add_argument("--models-dir", help="A1111-style models folder for --from: Stable-diffusion/, VAE/ "
                                        "(default $SD1KIT_HOME/models)")
    p.add_argument("--vae", help="an external VAE (.pt / .ckpt / .safetensors), or its name in models/VAE")
    p.add_argument("--embeddings", help="textual-inversion folder (default $SD1KIT_HOME/embeddings)")
    p.add_argument("--lora-dir", help="LoRA/LyCORIS folder for <lora:...> tags (default $SD1KIT_HOME/models/Lora "
                                      "and models/LyCORIS)")
    p.add_argument("--negative")
    p.add_argument("--model", help="checkpoint file or diffusers folder, or a name / short hash in "
                                   "$SD1KIT_HOME/models/Stable-diffusion (default: the built-in demo model)")
    p.add_argument("--sampler", help='A1111 sampler name, e.g. "DPM++ 2M Karras" (default Euler a)')
    p.add_argument("--schedule", help="A1111 schedule type (Karras, Exponential, ...; default Automatic)")
    p.add_argument("--steps", type=int)
    p.add_argument("--cfg", type=float)
    p.add_argument("--cfg-rescale", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--subseed", type=int)
    p.add_argument("--subseed-strength", type=float)
    p.add_argument("--size", help="WIDTHxHEIGHT (default 512x512)")
    p.add_argument("--clip-skip", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--batch-count", type=int)
    p.add_argument("--eta", type=float)
    p.add_argument("--ensd", type=int, help="eta noise seed delta (NovelAI: 31337)")
    p.add_argument("--rng", choices=("GPU", "CPU", "NV"))
    p.add_argument("--init", help="init image for img2img")
    p.add_argument("--denoise", type=float)
    p.add_argument("--mask", help="inpainting mask (white = repaint)")
    p.add_argument("--mask-blur", type=int, help="default 4")
    p.add_argument("--invert-mask", action="store_true", help="repaint the black area instead")
    p.add_argument("--masked-content", choices=("fill", "original", "latent noise", "latent nothing"))
    p.add_argument("--mask-weight", type=float, help="inpainting models' conditional mask weight (default 1)")
    p.add_argument("--only-masked", action="store_true", help='A1111 "Inpaint area: Only masked"')
    p.add_argument("--mask-padding", type=int, help="padding around the masked area for --only-masked (default 32)")
    p.add_argument("--tiled-vae", action="store_true", help="decode in tiles (bounded memory for large pictures)")
    p.add_argument("--vae-decoder", choices=("Full", "TAESD"), help="TAESD: the tiny decoder, much faster (fast mode; "
                                                                    "weights in $SD1KIT_HOME/models/VAE-taesd)")
    p.add_argument("--taesd", help="TAESD decoder weights (taesd_decoder.pth / .safetensors)")
    p.add_argument("--token-merging", type=float, metavar="RATIO", help="fast mode: ToMe ratio, e.g. 0.5 (recorded "
                                                                          "as A1111's Token merging ratio)")
    p.add_argument("--deepcache", type=int, metavar="N", help="fast mode: the whole UNet every N steps, its shallow "
                                                              "branch on cached deep features between (recorded)")
    p.add_argument("--hires", action="store_true", help="hires fix (A1111's txt2img second pass)")
    p.add_argument("--hires-scale", type=float, help="upscale factor (default 2)")
    p.add_argument("--hires-resize", help="or a target WIDTHxHEIGHT")
    p.add_argument("--hires-upscaler", help='"Latent" (default), "Latent (bicubic antialiased)", ..., "Lanczos", "Nearest"')
    p.add_argument("--hires-steps", type=int, help="second-pass steps (default: the first pass's)")
    p.add_argument("--hires-denoise", type=float, help="second-pass denoising strength (default 0.7)")
    p.add_argument("--hires-sampler")
    p.add_argument("--hires-schedule")
    p.add_argument("--hires-prompt")
    p.add_argument("--hires-negative")
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
    p.add_argument("--prediction", choices=("epsilon", "v"))
    p.add_argument("--ztsnr", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                   help="compute precision; auto: bf16 on CPUs with bf16 dot products, fp16 on CUDA, else fp32")
    p.add_argument("--low-memory", action="store_true",
                   help="keep weights in 16 bits and compute each layer in --dtype only while it runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="outputs")
    p.add_argument("--format", choices=("png", "jpg", "webp"), default="png")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("info", help="read generation metadata of pictures (A1111, NovelAI, ComfyUI, InvokeAI, ...)")
    p.add_argument("pictures", nargs="+")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per picture")
    p.add_argument("--strip", action="store_true", help="write a copy without metadata (pixels unchanged) to --out")
    p.add_argument("--out", help="output file for --strip")
    p.set_defaults(func=_cmd_info)

    lora = sub.add_parser("lora", help="LoRA / LyCORIS: check against a model, bake into it, extract from two models")
    lsub = lora.add_subparsers(dest="lora_command", required=True)
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

    p = sub.add_parser("merge", help="merge checkpoints by method or recipe, streamed, with provenance",
                       description="sd1kit merge A B [C] --method weighted-sum --alpha 0.3 --out OUT.safetensors; "
                                   "or --recipe R.toml; or --recipe-from MERGED.safetensors to redo a merge")
    p.add_argument("models", nargs="*", metavar="MODEL")
    p.add_argument("--method", default="weighted-sum",
                   help="weighted-sum, add-difference, no-interpolation, sum-twice, triple-sum, train-difference, "
                        "cosine-a, cosine-b, ties, dare")
    p.add_argument("--alpha", type=float)
    p.add_argument("--beta", type=float)
    p.add_argument("--blocks", help="block weights for alpha: a preset (GRAD_V, GRAD_A, FLAT_25, ...) or 26 numbers "
                                    "BASE,IN00..IN11,M00,OUT00..OUT11")
    p.add_argument("--bake", action="append", metavar="ADAPTER[:WEIGHT]", help="bake a LoRA/LyCORIS into the result")
    p.add_argument("--vae", help="bake this VAE file into the result")
    p.add_argument("--te-from", metavar="LETTER", help="take the text encoder from input A, B or C")
    p.add_argument("--unet-from", metavar="LETTER", help="take the UNet from input A, B or C")
    p.add_argument("--recipe", help="a TOML recipe")
    p.add_argument("--recipe-from", help="redo the merge recorded in this file")
    p.add_argument("--models-dir", help="where --recipe-from looks for inputs (A1111 layout)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"))
    p.add_argument("--force", action="store_true", help="merge models of different prediction types anyway")
    p.add_argument("--dry-run", action="store_true", help="print the recipe and stop")
    p.add_argument("--out", help="output .safetensors")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_merge)

    models = sub.add_parser("models", help="the SD1 anime family tree, model facts, advice, folder scan, fingerprints")
    form = models.add_mutually_exclusive_group()
    form.add_argument("--mermaid", action="store_true", help="the tree as a Mermaid flowchart (the guide's form)")
    form.add_argument("--dot", action="store_true", help="the tree as Graphviz dot")
    form.add_argument("--json", action="store_true", help="every record as JSON")
    models.set_defaults(func=_cmd_models)
    msub = models.add_subparsers(dest="models_command")
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

    p = sub.add_parser("qr", help="QR-code art with QR Code Monster: code on grey, generation, scan check, weight sweep")
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
    p.add_argument("--size", default="512x512")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=-1)
    p.add_argument("--sampler", default="DPM++ 2M Karras")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16", "auto"), default="fp32")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="outputs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_qr)

    p = sub.add_parser("serve", help="an A1111-compatible HTTP API and a web page")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--models-dir", help="A1111-style models folder (default $SD1KIT_HOME/models)")
    p.add_argument("--model", help="the checkpoint to start with (name, title or short hash in the models folder)")
    p.add_argument("--auth", metavar="USER:PASS", help="HTTP basic authentication (required off loopback)")
    p.add_argument("--insecure-no-auth", action="store_true", help="listen off loopback without authentication")
    p.add_argument("--queue", type=int, default=16, help="jobs that may wait (a full queue answers 429)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16", "auto"), default="fp32")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("demo", help="draw with the built-in demo model, inspect and convert tiny models")
    p.add_argument("--out", default="outputs")
    p.set_defaults(func=_cmd_demo)

    dev = sub.add_parser("dev", help="developer tools").add_subparsers(dest="dev_command", required=True)
    from sd1kit.dev.tiny import LAYOUTS

    p = dev.add_parser("tiny-model", help="write a tiny random-weight model of the real SD1 topology",
                       description="layouts: " + "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()))
    p.add_argument("output")
    p.add_argument("--layout", choices=tuple(LAYOUTS), default="sd15")
    p.add_argument("--prediction", choices=("epsilon", "v"), default="epsilon")
    p.add_argument("--ztsnr", action="store_true")
    p.add_argument("--markers", action="store_true", help="mark v / ztsnr by marker keys instead of a yaml")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tiny_model)

    p = dev.add_parser("train-demo", help="train the demo models (epsilon and v-prediction) on the demo world")
    p.add_argument("--out", default="demo-models", help="folder for sd1kit-demo.safetensors (epsilon) and "
                   "sd1kit-demo-v.safetensors")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the training steps (quick trials)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_train_demo)
    return parser


def _cmd_train_demo(args) -> int:
    from sd1kit.demo.train import Plan, train_demo

    for path in train_demo(args.out, Plan(seed=args.seed).scaled(args.scale)):
        print(f"wrote {path}")
    return 0


def _error(e: Sd1kitError) -> None:
    print(f"sd1kit: {e}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Sd1kitError as e:
        _error(e)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI promises one line, not a traceback
        if os.environ.get("SD1KIT_DEBUG"):
            traceback.print_exc()
        print(f"sd1kit: internal error: {e.__class__.__name__}: {e} (set SD1KIT_DEBUG=1 for details)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
