"""Scores a picture against its prompt by image analysis: the background's colour (the border), the shape's colour
(what differs from the background), its position (the centroid) and its shape (how much of its box it fills).
Only what the prompt names is scored."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from sd1kit.demo.world import COLOURS, POSITIONS, SHAPES, SIZE

_PALETTE = np.array(list(COLOURS.values()), float)
_NAMES = list(COLOURS)


@dataclass
class Score:
    found: dict[str, str]
    expected: dict[str, str]
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return sum(self.checks.values()) / len(self.checks) if self.checks else 0.0


def parse_prompt(prompt: str) -> dict[str, str]:
    """The attributes a tag prompt asks for: `red circle, blue background, top left`."""
    wanted: dict[str, str] = {}
    for tag in (t.strip().lower() for t in prompt.split(",")):
        words = tag.split()
        if len(words) == 2 and words[1] == "background" and words[0] in COLOURS:
            wanted["background"] = words[0]
        elif len(words) == 2 and words[0] in COLOURS and words[1] in SHAPES:
            wanted["colour"], wanted["shape"] = words
        elif tag in POSITIONS:
            wanted["position"] = tag
    return wanted


def nearest_colour(rgb: np.ndarray) -> str:
    return _NAMES[int(np.argmin(((_PALETTE - rgb) ** 2).sum(1)))]


def analyse(picture: Image.Image) -> dict[str, str]:
    """What the picture shows, in the world's words (64x64; other sizes are resized)."""
    a = np.asarray(picture.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), float)
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3), a[:, :2].reshape(-1, 3),
                             a[:, -2:].reshape(-1, 3)])
    background = np.median(border, 0)
    distance = np.sqrt(((a - background) ** 2).sum(-1))
    mask = distance > 60
    found = {"background": nearest_colour(background)}
    if mask.sum() < 20:  # nothing drawn
        return found
    found["colour"] = nearest_colour(np.median(a[mask], 0))
    ys, xs = np.nonzero(mask)
    centre = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
    found["position"] = min(POSITIONS, key=lambda p: np.linalg.norm(centre - np.array(POSITIONS[p])))
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    fill = mask.sum() / box
    found["shape"] = "square" if fill > 0.88 else "circle" if fill > 0.66 else "triangle"
    return found


def score(picture: Image.Image, prompt: str) -> Score:
    expected = parse_prompt(prompt)
    found = analyse(picture)
    return Score(found, expected, {k: found.get(k) == v for k, v in expected.items()})
