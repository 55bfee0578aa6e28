"""`sd1kit merge`: checkpoints merged by method or recipe, streamed, with provenance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sd1kit.errors import Sd1kitError


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


def add_parser(sub) -> None:
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
