"""End-to-end quality: generate pictures of held-out prompts with the real pipeline and score them with the
content checker. What a wrong CFG sign, prediction type, clip skip or sampler breaks shows here."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sd1kit.demo.checker import Score, score
from sd1kit.demo.world import POSITIONS, held_out_scenes


@dataclass
class Quality:
    accuracy: float  # share of the named attributes (colour, shape, background, position) drawn right
    scores: list[Score]
    prompts: list[str]


def held_out_prompts(n: int, positions: bool = False) -> list[str]:
    """n prompts the demo models never saw (their colour, shape and background never appeared together), spread
    over the held-out combinations. Without a position tag by default: in their training budget the demo models
    learned colours, shapes and backgrounds but not where to put the shape (README, demo section)."""
    scenes = held_out_scenes()  # each held-out (colour, shape, background) at every position, in that order
    per_triple = len(POSITIONS)
    triples = len(scenes) // per_triple
    picked = [scenes[(i * triples // n % triples) * per_triple + i % per_triple] for i in range(n)]
    return [s.caption(position=positions) for s in picked]


def evaluate(model, request, n: int = 12, prompts: list[str] | None = None, judged: list[str] | None = None,
             transform=None) -> Quality:
    """Generates one picture per prompt (seed = index) with `request`'s settings. `judged` are the prompts to score
    against (default: the prompts themselves); `transform(request)` may change each request before it runs."""
    from sd1kit.pipeline.generate import generate

    prompts = prompts or held_out_prompts(n)
    scores = []
    for i, prompt in enumerate(prompts):
        r = replace(request, prompt=prompt, seed=1000 + i)
        if transform is not None:
            r = transform(r)
        picture = generate(r, model).images[0].image
        scores.append(score(picture, (judged or prompts)[i]))
    total = sum(len(s.checks) for s in scores)
    return Quality(sum(sum(s.checks.values()) for s in scores) / max(1, total), scores, prompts)
