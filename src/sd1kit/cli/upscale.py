"""`sd1kit upscale`: A1111's Extras upscale of pictures on the command line, by a resampling upscaler (Lanczos,
Nearest) or a model upscaler of the models folder (ESRGAN, Real-ESRGAN, SwinIR, DAT ...: `--list` shows them)."""

from __future__ import annotations

from pathlib import Path

from sd1kit.errors import Sd1kitError


def _list(args) -> int:
    from sd1kit.install.place import models_root
    from sd1kit.pipeline.upscale import UPSCALERS
    from sd1kit.upscalers import MODEL_FOLDERS, installed_upscalers

    found = installed_upscalers(args.models_dir)
    for name in UPSCALERS[1:]:
        print(f"{name:32}  (resampling)")
    for u in found:
        print(f"{u.name:32}  {u.folder}/{u.path.relative_to(models_root(args.models_dir) / u.folder)}")
    if not found:
        print(f"no model upscalers in {models_root(args.models_dir)} ({', '.join(MODEL_FOLDERS)})")
    return 0


def _spec(args):
    from sd1kit.pipeline.options import parse_pair
    from sd1kit.pipeline.upscale import Upscale

    to = parse_pair(args.to, "--to") if args.to else None
    return Upscale(args.upscaler, args.scale, to, not args.no_crop, args.upscaler_2 or "None", args.visibility,
                   args.models_dir, args.tile, args.tile_overlap)


def _write(picture, texts: dict, folder: Path, stem: str) -> Path:
    from sd1kit.formats.atomic import atomic_path
    from sd1kit.pipeline.save import numbered_path, png_info

    path = numbered_path(folder, stem, "png")
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", pnginfo=png_info(texts))
    return path


def _cmd_upscale(args) -> int:
    from sd1kit.pipeline.images import open_picture
    from sd1kit.pipeline.upscale import kept_texts, run_upscale

    if args.list:
        return _list(args)
    if not args.pictures:
        raise Sd1kitError("upscale", "give the pictures to upscale (or --list)")
    spec = _spec(args)
    spec.check()  # names and bounds before any picture is read
    for source in args.pictures:
        if not Path(source).is_file():
            raise Sd1kitError(source, "no such file")
        image = open_picture(source, "RGB", "picture")
        out = run_upscale(image, spec)  # checks the output's size before any work
        path = _write(out, kept_texts(image, spec), Path(args.out), Path(source).stem[:80])
        print(f"wrote {path} ({image.width}x{image.height} -> {out.width}x{out.height}, {spec.upscaler})")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("upscale", help="upscale pictures as A1111's Extras does (Lanczos, ESRGAN, Real-ESRGAN, "
                                       "SwinIR, DAT ...)")
    p.add_argument("pictures", nargs="*")
    p.add_argument("--upscaler", default="Lanczos",
                   help='"Lanczos" (default), "Nearest", or a model upscaler: a file stem in models/ESRGAN ... '
                        '("4x-UltraSharp") or A1111\'s built-in name ("R-ESRGAN 4x+ Anime6B")')
    p.add_argument("--scale", type=float, default=2.0, help="upscale by (1..8, default 2)")
    p.add_argument("--to", metavar="WxH", help="upscale to this size instead (centre-cropped to it)")
    p.add_argument("--no-crop", action="store_true", help="with --to: keep the aspect ratio, no crop")
    p.add_argument("--upscaler-2", help="a second upscaler blended in (A1111's Upscaler 2)")
    p.add_argument("--visibility", type=float, default=0.0, help="the second upscaler's weight (0..1)")
    p.add_argument("--tile", type=int, help="model upscalers' tile in pixels (default A1111's: 192, ScuNET 256; "
                                            "0: untiled)")
    p.add_argument("--tile-overlap", type=int, help="model upscalers' tile overlap (default 8)")
    p.add_argument("--models-dir", help="A1111-style models folder holding ESRGAN/, RealESRGAN/, SwinIR/, DAT/ ... "
                                        "(default $SD1KIT_HOME/models)")
    p.add_argument("--out", default="outputs/extras-images", help="output folder (default outputs/extras-images)")
    p.add_argument("--list", action="store_true", help="list the upscalers and where their files are")
    p.set_defaults(func=_cmd_upscale)
