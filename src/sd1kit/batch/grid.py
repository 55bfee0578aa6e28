"""X/Y/Z grids as A1111's X/Y/Z plot makes them: each `--xy "Key=v1,v2,..."` an axis (the first X, the second Y,
the third Z), its key an infotext key read by the option table as a picture's (Sampler, CFG scale, Steps, Seed,
Schedule type, Denoising strength, Clip skip, ...), or `Prompt S/R` (the first value is searched in the prompts and
each value put in its place, the first included) or `Checkpoint name`; values separated by commas (CSV quoting for a
value with a comma). Every combination is one job; the grid picture (one per Z value) has the X labels above its
columns and the Y labels left of its rows."""

from __future__ import annotations

import csv
import dataclasses
import itertools
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from sd1kit.batch.jobs import Base, Job
from sd1kit.errors import Sd1kitError

SPECIAL = ("Prompt S/R", "Checkpoint name")


@dataclasses.dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...]

    def label(self, i: int) -> str:
        return f"{self.key}: {self.values[i]}"


def parse_axis(text: str) -> Axis:
    """`Key=v1,v2,...` -> Axis; the key checked against the option table's infotext keys (case-insensitive)."""
    key, sep, rest = text.partition("=")
    if not sep or not key.strip():
        raise Sd1kitError("--xy", f"{text!r}: expected KEY=VALUE,VALUE,... (e.g. \"CFG scale=5,7,9\")")
    values = tuple(v.strip() for v in next(csv.reader([rest], skipinitialspace=True), []) if v.strip())
    if not values:
        raise Sd1kitError("--xy", f"{key.strip()}: no values")
    return Axis(_axis_key(key.strip()), values)


def _axis_key(key: str) -> str:
    from sd1kit.pipeline.options import OPTIONS

    known = {o.infotext.lower(): o.infotext for o in OPTIONS if o.infotext} | {k.lower(): k for k in SPECIAL}
    if key.lower() not in known:
        raise Sd1kitError("--xy", f"unknown axis {key!r}: an infotext key (e.g. Sampler, CFG scale, Steps, Seed) "
                                  "or Prompt S/R or Checkpoint name")
    return known[key.lower()]


def _apply(request, axis: Axis, i: int, base: Base):
    """The request with axis value i set, as the grid's own source."""
    value = axis.values[i]
    if axis.key == "Prompt S/R":
        search = axis.values[0]
        return request.given("grid", prompt=request.prompt.replace(search, value),
                             negative_prompt=request.negative_prompt.replace(search, value))
    if axis.key == "Checkpoint name":
        from sd1kit.pipeline.from_picture import resolve_file

        return request.given("grid", model=resolve_file(value, "Stable-diffusion"))
    from sd1kit.pipeline.options import options_from_infotext

    return request.given("grid", **options_from_infotext({axis.key: value}, f"--xy {axis.key}"))


def grid_jobs(axes: list[Axis], base: Base) -> list[Job]:
    """One job per combination, X fastest (as A1111 runs them), each with its cell."""
    if not 1 <= len(axes) <= 3:
        raise Sd1kitError("--xy", f"one to three axes (X, Y, Z), not {len(axes)}")
    if axes[0].key == "Prompt S/R" and axes[0].values[0] not in base.request.prompt + base.request.negative_prompt:
        raise Sd1kitError("--xy", f"Prompt S/R: {axes[0].values[0]!r} is not in the prompt")
    ranges = [range(len(a.values)) for a in axes] + [range(1)] * (3 - len(axes))
    jobs = []
    for z, y, x in itertools.product(*reversed(ranges)):
        request, cell = base.request, (x, y, z)
        try:
            for axis, i in zip(axes, cell):
                request = _apply(request, axis, i, base)
            jobs.append(Job(len(jobs), _cell_label(axes, cell), request, cell=cell))
        except Sd1kitError as e:
            jobs.append(Job(len(jobs), _cell_label(axes, cell), None, str(e), cell=cell))
    return jobs


def _cell_label(axes: list[Axis], cell: tuple) -> str:
    return "grid " + ", ".join(a.label(i) for a, i in zip(axes, cell))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def draw_grid(axes: list[Axis], cells: dict, z: int = 0) -> Image.Image:
    """The grid picture of Z index `z`: `cells` maps (x, y, z) to a picture (a missing one is drawn grey); X labels
    above the columns, Y labels left of the rows, as A1111's X/Y/Z plot lays them out."""
    xs = len(axes[0].values)
    ys = len(axes[1].values) if len(axes) > 1 else 1
    some = next(iter(cells.values()), None)
    w, h = some.size if some is not None else (512, 512)
    font = _font(max(12, w // 16))
    top = max(24, w // 8)
    left = max(int(font.getlength(axes[1].label(j))) + 24 for j in range(ys)) if len(axes) > 1 else 0
    title = max(24, w // 8) if len(axes) > 2 else 0
    grid = Image.new("RGB", (left + xs * w, title + top + ys * h), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((grid.width // 2, title // 2), axes[2].label(z), fill="black", font=font, anchor="mm")
    for i in range(xs):
        draw.text((left + i * w + w // 2, title + top // 2), axes[0].label(i), fill="black", font=font, anchor="mm")
    for j in range(ys):
        if len(axes) > 1:
            draw.text((left // 2, title + top + j * h + h // 2), axes[1].label(j), fill="black", font=font,
                      anchor="mm")
        for i in range(xs):
            cell = cells.get((i, j, z))
            grid.paste(cell.resize((w, h)) if cell is not None else Image.new("RGB", (w, h), "#888"),
                       (left + i * w, title + top + j * h))
    return grid


def write_grids(axes: list[Axis], jobs: list[Job], out: Path, picture_of) -> list[Path]:
    """grid-N.png in `out` for each Z value, from the jobs' first pictures (`picture_of(job)`: a PIL image or
    None), written atomically."""
    from sd1kit.formats.atomic import atomic_path

    zs = len(axes[2].values) if len(axes) > 2 else 1
    paths = []
    for z in range(zs):
        cells = {job.cell: pic for job in jobs if job.cell and job.cell[2] == z and (pic := picture_of(job))}
        path = out / f"grid-{z}.png"
        with atomic_path(path) as tmp:
            draw_grid(axes, cells, z).save(tmp, format="PNG")
        paths.append(path)
    return paths
