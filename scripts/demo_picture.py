"""Writes docs/demo.png, the README's picture: the built-in demo models drawing prompts they never saw in training
(with the content checker's verdict under each), the epsilon model above the v-prediction one.

    .venv/bin/python scripts/demo_picture.py [--out docs/demo.png]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from sd1kit.cli import DEMO_PROMPTS
from sd1kit.demo import DEMO_NAMES, demo_model
from sd1kit.demo.checker import score
from sd1kit.demo.quality import held_out_prompts
from sd1kit.pipeline.generate import generate
from sd1kit.pipeline.model import load_model
from sd1kit.pipeline.request import GenerationRequest

SCALE, LABEL = 2, 14


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/demo.png")
    args = parser.parse_args()
    prompts = [DEMO_PROMPTS[0], *held_out_prompts(12)[:7]]
    cell = 64 * SCALE
    sheet = Image.new("RGB", (cell * len(prompts), (cell + LABEL) * len(DEMO_NAMES)), "white")
    pen = ImageDraw.Draw(sheet)
    for row, name in enumerate(DEMO_NAMES):
        model = load_model(demo_model(name))
        for col, prompt in enumerate(prompts):
            request = GenerationRequest(prompt=prompt, width=64, height=64, steps=20, seed=1 + col)
            picture = generate(request, model).images[0].image
            verdict = score(picture, prompt)
            x, y = col * cell, row * (cell + LABEL)
            sheet.paste(picture.resize((cell, cell), Image.NEAREST), (x, y))
            label = "eps" if name == DEMO_NAMES[0] else "v"
            pen.text((x + 3, y + cell + 1), f"{label} {sum(verdict.checks.values())}/{len(verdict.checks)} right",
                     fill="black")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".png", delete=False) as tmp:
        sheet.save(tmp, format="PNG")
    os.replace(tmp.name, out)
    print(f"wrote {out}: " + " | ".join(prompts))


if __name__ == "__main__":
    main()
