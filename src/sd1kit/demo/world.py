"""The demo world: 64x64 pictures of one flat shape on a flat background, whose content is known exactly, captioned
the way SD1 users write tags (`red circle, blue background, top left`). Deterministic from a seed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

SIZE = 64
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (235, 215, 40),
    "purple": (140, 50, 180), "orange": (245, 140, 30), "white": (240, 240, 240), "black": (25, 25, 25),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS: dict[str, tuple[int, int]] = {  # centre (x, y) in pixels
    "top left": (18, 18), "top right": (46, 18), "bottom left": (18, 46), "bottom right": (46, 46),
    "center": (32, 32),
}
RADIUS = 13  # half the side of the shape's box


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    background: str
    position: str

    def caption(self, position: bool = True, background: bool = True) -> str:
        tags = [f"{self.colour} {self.shape}"]
        if background:
            tags.append(f"{self.background} background")
        if position:
            tags.append(self.position)
        return ", ".join(tags)


def all_scenes() -> list[Scene]:
    return [Scene(c, s, b, p) for c, s, b, p in itertools.product(COLOURS, SHAPES, COLOURS, POSITIONS) if c != b]


def is_held_out(scene: Scene) -> bool:
    """About one (colour, shape, background) triple in seven is never shown in training: the quality test asks for
    those, so the model must compose what it learned rather than recall a picture."""
    return (list(COLOURS).index(scene.colour) * 5 + SHAPES.index(scene.shape) * 3
            + list(COLOURS).index(scene.background)) % 7 == 0


def draw(scene: Scene, jitter: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """uint8 HxWx3 picture; jitter = (dx, dy, dr) pixels."""
    cx, cy = POSITIONS[scene.position]
    cx, cy, r = cx + jitter[0], cy + jitter[1], RADIUS + jitter[2]
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    if scene.shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    elif scene.shape == "square":
        inside = (np.abs(x - cx) <= r * 0.85) & (np.abs(y - cy) <= r * 0.85)
    else:  # upward triangle in the box [cx - r, cx + r] x [cy - r, cy + r]
        top, bottom = cy - r, cy + r
        half = (y - top) / (bottom - top) * r
        inside = (y >= top) & (y <= bottom) & (np.abs(x - cx) <= half)
    picture = np.empty((SIZE, SIZE, 3), np.uint8)
    picture[:] = COLOURS[scene.background]
    picture[inside] = COLOURS[scene.colour]
    return picture


def sample(rng: np.random.Generator, scenes: list[Scene]) -> tuple[np.ndarray, str]:
    """One training example: a jittered picture and its caption, with tags dropped as people drop them
    (no position 30 %, no background 20 %, no caption at all 10 %: what CFG's unconditional pass learns from)."""
    scene = scenes[rng.integers(len(scenes))]
    jitter = (int(rng.integers(-3, 4)), int(rng.integers(-3, 4)), int(rng.integers(-2, 3)))
    u = rng.random(3)
    caption = "" if u[0] < 0.1 else scene.caption(position=u[1] >= 0.3, background=u[2] >= 0.2)
    return draw(scene, jitter), caption


def training_scenes() -> list[Scene]:
    return [s for s in all_scenes() if not is_held_out(s)]


def held_out_scenes() -> list[Scene]:
    return [s for s in all_scenes() if is_held_out(s)]
