"""`sd1kit demo`, `sd1kit dev tiny-model` and `sd1kit dev train-demo`: the demo model and developer tools."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sd1kit.cli.common import add_subcommands

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


def _cmd_tiny_model(args) -> int:
    from sd1kit.dev.tiny import write_tiny_model

    path = write_tiny_model(args.output, layout=args.layout, prediction=args.prediction, ztsnr=args.ztsnr,
                            markers=args.markers, seed=args.seed)
    print(f"wrote {path}")
    return 0


def _cmd_train_demo(args) -> int:
    from sd1kit.demo.train import Plan, train_demo

    for path in train_demo(args.out, Plan(seed=args.seed).scaled(args.scale)):
        print(f"wrote {path}")
    return 0


def _add_dev_parsers(dev) -> None:
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


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="draw with the built-in demo model, inspect and convert tiny models")
    p.add_argument("--out", default="outputs")
    p.set_defaults(func=_cmd_demo)

    dev = sub.add_parser("dev", help="developer tools")
    _add_dev_parsers(add_subcommands(dev, dest="dev_command", required=True))
