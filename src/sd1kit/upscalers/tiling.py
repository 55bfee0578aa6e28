"""A model run over a picture in tiles, for bounded memory, as A1111 1.8-1.10 tiles it (modules/upscaler_utils.py,
modules/images.py; the code here is sd1kit's own).

`grid_upscale` is A1111's `upscale_with_model` (ESRGAN, Real-ESRGAN, DAT, HAT): `images.split_grid(tile_w=tile,
tile_h=tile, overlap)` cuts tile x tile squares whose starts are spread evenly (cols = ceil((w - overlap) / (tile -
overlap)), x = int(col * (w - tile) / (cols - 1)), the last one flush with the edge, so neighbours overlap by at
least `overlap`), each tile is upscaled on its own, and `images.combine_grid` pastes them back in order with the
overlap scaled by the model's factor: the first `overlap` columns (rows) of each later tile blended over the picture
so far through a linear 0..255 ramp, the rest pasted. A picture smaller than the tile gets tiles that reach past
its left/top edge, filled with black, as PIL's crop gives them to A1111 (the model then sees black beyond that
edge). Two corrections where A1111 would go wrong: at least one column/row of tiles (A1111 has none, a black
picture, when a side is at most the overlap), and a tile starting left of the edge pasted whole (A1111 blends its
ramp with black there when the side is just under the tile).

`tensor_upscale` is A1111's `upscale_2` / `tiled_upscale_2` (SwinIR, ScuNET): the tile is min(tile, h, w), starts
every tile - overlap pixels plus one flush with the far edge, the outputs summed in tensor space and divided by how
many tiles covered each pixel.

Both feed the model as A1111 does: RGB flipped to BGR, /255 in float64 then the model's dtype, spandrel's
descriptor (padding to the model's size rules, output clamped to 0..1), back to 8 bits by truncating 255 * value.
`tile` 0 runs the whole picture at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image

Progress = Callable[[int, int], None] | None  # (tiles done, tiles in all); may raise to stop


def to_tensor(image: Image.Image, model) -> torch.Tensor:
    """[1, 3, H, W] BGR in 0..1 on the model's device and dtype (A1111's pil_image_to_torch_bgr)."""
    array = np.asarray(image.convert("RGB"))[:, :, ::-1].transpose(2, 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(array) / 255.0)
    return tensor.unsqueeze(0).to(device=model.device, dtype=model.dtype)


def to_image(tensor: torch.Tensor) -> Image.Image:
    """A1111's torch_bgr_to_pil_image: 255 * value clipped, truncated to 8 bits, BGR back to RGB."""
    array = tensor.detach().squeeze(0).float().cpu().numpy()
    array = np.clip(255.0 * np.moveaxis(array, 0, 2), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array[:, :, ::-1]), "RGB")


def run_model(model, image: Image.Image) -> Image.Image:
    """The model on one picture (or tile), untiled."""
    with torch.inference_mode():
        return to_image(model(to_tensor(image, model)))


@dataclass
class Grid:
    """A1111's images.Grid: rows of (y, h, [(x, w, tile)])."""

    tile_w: int
    tile_h: int
    image_w: int
    image_h: int
    overlap: int
    tiles: list = field(default_factory=list)

    @property
    def tile_count(self) -> int:
        return sum(len(row) for _, _, row in self.tiles)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    count = max(math.ceil((size - overlap) / (tile - overlap)), 1)
    step = (size - tile) / (count - 1) if count > 1 else 0
    starts = []
    for i in range(count):
        start = int(i * step)
        starts.append(size - tile if start + tile >= size else start)
    return starts


def split_grid(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> Grid:
    grid = Grid(tile_w, tile_h, image.width, image.height, overlap)
    for y in _starts(image.height, tile_h, overlap):
        row = [(x, tile_w, image.crop((x, y, x + tile_w, y + tile_h))) for x in _starts(image.width, tile_w, overlap)]
        grid.tiles.append((y, tile_h, row))
    return grid


def _ramp(length: int, across: int, vertical: bool) -> Image.Image:
    values = (np.arange(length, dtype=np.float32) * 255 / length).astype(np.uint8)
    array = np.repeat(values[:, None], across, axis=1) if vertical else np.repeat(values[None, :], across, axis=0)
    return Image.fromarray(np.ascontiguousarray(array), "L")


def combine_grid(grid: Grid) -> Image.Image:
    overlap = grid.overlap
    combined = Image.new("RGB", (grid.image_w, grid.image_h))
    ramp_w = _ramp(overlap, grid.tile_h, vertical=False) if overlap else None
    ramp_h = _ramp(overlap, grid.image_w, vertical=True) if overlap else None
    for y, h, row in grid.tiles:
        line = Image.new("RGB", (grid.image_w, h))
        for x, w, tile in row:
            if x <= 0 or not overlap:
                line.paste(tile, (x, 0))
                continue
            line.paste(tile.crop((0, 0, overlap, h)), (x, 0), mask=ramp_w)
            line.paste(tile.crop((overlap, 0, w, h)), (x + overlap, 0))
        if y <= 0 or not overlap:
            combined.paste(line, (0, y))
            continue
        combined.paste(line.crop((0, 0, line.width, overlap)), (0, y), mask=ramp_h)
        combined.paste(line.crop((0, overlap, line.width, h)), (0, y + overlap))
    return combined


def grid_upscale(model, image: Image.Image, tile: int, overlap: int, progress: Progress = None) -> Image.Image:
    """A1111's upscale_with_model: split_grid, each tile upscaled, combine_grid with the overlap scaled."""
    if tile <= 0:
        return run_model(model, image)
    grid = split_grid(image, tile, tile, overlap)
    done, rows, factor = 0, [], 1
    for y, h, row in grid.tiles:
        out_row = []
        for x, w, piece in row:
            out = run_model(model, piece)
            factor = out.width // piece.width
            out_row.append((x * factor, w * factor, out))
            done += 1
            if progress is not None:
                progress(done, grid.tile_count)
        rows.append((y * factor, h * factor, out_row))
    scaled = Grid(grid.tile_w * factor, grid.tile_h * factor, grid.image_w * factor, grid.image_h * factor,
                  grid.overlap * factor, rows)
    return combine_grid(scaled)


def _tensor_starts(size: int, tile: int, stride: int) -> list[int]:
    return list(range(0, size - tile, stride)) + [size - tile]


def tensor_upscale(model, image: Image.Image, tile: int, overlap: int, progress: Progress = None) -> Image.Image:
    """A1111's upscale_2 / tiled_upscale_2: tiles summed in tensor space, divided by their coverage."""
    with torch.inference_mode():
        pixels = to_tensor(image, model)
        _, channels, h, w = pixels.shape
        tile = min(tile, h, w)
        if tile <= 0 or tile - overlap <= 0:  # A1111: range() with a step of 0 fails; the picture fits one tile
            return to_image(model(pixels))
        scale = model.scale
        ys, xs = _tensor_starts(h, tile, tile - overlap), _tensor_starts(w, tile, tile - overlap)
        result = torch.zeros(1, channels, h * scale, w * scale, device=pixels.device, dtype=pixels.dtype)
        weights = torch.zeros_like(result)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                out = model(pixels[..., y:y + tile, x:x + tile])
                result[..., y * scale:(y + tile) * scale, x * scale:(x + tile) * scale].add_(out)
                weights[..., y * scale:(y + tile) * scale, x * scale:(x + tile) * scale].add_(1)
                if progress is not None:
                    progress(i * len(xs) + j + 1, len(ys) * len(xs))
        return to_image(result.div_(weights))
