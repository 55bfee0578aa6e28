"""A1111's `Upscaler.upscale` (modules/upscaler.py) for a model upscaler: the target is the scaled size rounded
down to a multiple of 8, the model is run until the picture reaches it (at most 3 times, stopping when a pass leaves
the size as it was; a scale of 1 still runs the model once, as A1111 does for denoisers such as ScuNET), and one
Lanczos resize lands it exactly."""

from __future__ import annotations

from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.upscalers.loading import load_upscaler
from sd1kit.upscalers.names import KINDS, UpscalerFile
from sd1kit.upscalers.tiling import Progress, grid_upscale, tensor_upscale

MAX_PASS_PIXELS = 64 << 20  # one model pass's output (A1111 bounds none; a 4x model's pass may overshoot the target)
MAX_PASS_SIDE = 16384
MAX_TILE = 4096


def tile_settings(upscaler: UpscalerFile, tile: int | None, overlap: int | None) -> tuple[int, int]:
    """The tile and overlap for this upscaler: given, else A1111's defaults for its folder (ESRGAN_tile 192 /
    ESRGAN_tile_overlap 8, DAT_tile, SWIN_tile, SCUNET_tile ...); checked."""
    kind = KINDS[upscaler.folder]
    tile = kind.tile if tile is None else tile
    overlap = kind.overlap if overlap is None else overlap
    if isinstance(tile, bool) or not isinstance(tile, int) or not (tile == 0 or 8 <= tile <= MAX_TILE):
        raise Sd1kitError("tile", f"must be 0 (untiled) or 8..{MAX_TILE} pixels, not {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0 or (tile and overlap >= tile):
        raise Sd1kitError("tile overlap", f"must be 0 or more and under the tile ({tile}), not {overlap!r}")
    return tile, overlap


def target_size(image: Image.Image, scale: float) -> tuple[int, int]:
    """A1111: int(side * scale // 8 * 8)."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 64:
        raise Sd1kitError("scale", f"must be a number above 0 (and at most 64), not {scale!r}")
    size = int(image.width * scale // 8 * 8), int(image.height * scale // 8 * 8)
    if min(size) < 8:
        raise Sd1kitError("scale", f"{image.width}x{image.height} scaled by {scale:g} is under 8 pixels a side")
    return size


def _check_pass(upscaler: UpscalerFile, image: Image.Image, factor: int) -> None:
    w, h = image.width * factor, image.height * factor
    if w * h > MAX_PASS_PIXELS or max(w, h) > MAX_PASS_SIDE:
        raise Sd1kitError(upscaler.name, f"a {factor}x pass of {image.width}x{image.height} would give {w}x{h}, "
                                         f"over {MAX_PASS_PIXELS >> 20} MP or {MAX_PASS_SIDE} a side")


def upscale_with(image: Image.Image, upscaler: UpscalerFile, scale: float, tile: int | None = None,
                 overlap: int | None = None, *, device: str | None = None, progress: Progress = None) -> Image.Image:
    """`image` upscaled by `scale` with the model upscaler, as A1111's Upscaler.upscale does: dest =
    int(side * scale) // 8 * 8, the model run (tiled as A1111 tiles that folder's models; `tile` / `overlap` None:
    A1111's defaults, `tile` 0: untiled) until the picture reaches dest, then one Lanczos resize to dest.
    `device`: where the model runs (default the CPU); `progress(done, total)` is called after each tile."""
    tile, overlap = tile_settings(upscaler, tile, overlap)
    dest = target_size(image, scale)
    model = load_upscaler(upscaler, device)
    run = grid_upscale if KINDS[upscaler.folder].tiling == "grid" else tensor_upscale
    image = image.convert("RGB")
    for i in range(3):
        if image.width >= dest[0] and image.height >= dest[1] and (i > 0 or scale != 1):
            break
        before = image.size
        _check_pass(upscaler, image, model.scale)
        image = run(model, image, tile, overlap, progress)
        if image.size == before:
            break
    if image.size != dest:
        image = image.resize(dest, Image.LANCZOS)
    return image
