"""A1111's "Extras" upscale (`scripts/postprocessing_upscale.py`, `modules/upscaler.py`): a picture upscaled by
a factor or to a size (then centre-cropped to it, or not), by one upscaler, optionally blended with a second.
An upscaler is a resampling one (Lanczos, Nearest) or a model upscaler of the models folder (ESRGAN, Real-ESRGAN,
SwinIR, DAT ...: `sd1kit.upscalers`, tiled as A1111 tiles them).

As A1111's `Upscaler.upscale` does: the target is the scaled size rounded down to a multiple of 8, the upscaler
is run until the picture reaches it (once for the resampling upscalers), and a last Lanczos resize lands it
exactly; "None" leaves the picture as it is."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.hires import PIXEL_UPSCALERS

UPSCALERS = ("None", *PIXEL_UPSCALERS)  # the resampling ones; model upscalers are the installed files
MAX_OUTPUT_PIXELS = 16 << 20
MAX_OUTPUT_SIDE = 8192
MAX_TEXT = 64 << 10  # a picture's text chunk kept in the output


@dataclass(frozen=True)
class Upscale:
    """One extras upscale, as A1111's payload asks it."""

    upscaler: str = "None"
    by: float = 2.0  # resize_mode 0
    to: tuple[int, int] | None = None  # resize_mode 1: (width, height)
    crop: bool = True  # with `to`: centre-crop to it
    second: str = "None"
    second_visibility: float = 0.0
    models_dir: str | None = None  # where the model upscalers' folders are (None: $SD1KIT_HOME/models)
    tile: int | None = None  # model upscalers' tile and overlap (None: A1111's defaults for the folder)
    overlap: int | None = None

    def model(self, name: str, what: str = "upscaler_1"):
        """None for a resampling upscaler, else the installed model upscaler called `name` (one line when it is
        not installed, naming the file and folder)."""
        if name in UPSCALERS:
            return None
        from sd1kit.pipeline.hires import LATENT_UPSCALERS
        from sd1kit.upscalers import find_upscaler

        if name in LATENT_UPSCALERS:
            raise Sd1kitError(what, f"{name!r} is a latent upscaler, for the hires pass only")
        return find_upscaler(name, self.models_dir, what)

    def check(self, image: Image.Image | None = None) -> tuple:
        """Names and bounds; with `image`, its output size too (before any work). Returns the two upscalers'
        model files (None for a resampling one), found once."""
        models = tuple(self.model(name, what) for what, name in (("upscaler_1", self.upscaler),
                                                                 ("upscaler_2", self.second)))
        if self.to is None and not 1.0 <= self.by <= 8.0:
            raise Sd1kitError("upscaling_resize", f"must be between 1 and 8, not {self.by:g}")
        if self.to is not None and not all(64 <= side <= MAX_OUTPUT_SIDE for side in self.to):
            raise Sd1kitError("upscaling_resize_w/h", f"{self.to[0]}x{self.to[1]} is outside 64..{MAX_OUTPUT_SIDE}")
        if not 0.0 <= self.second_visibility <= 1.0:
            raise Sd1kitError("extras_upscaler_2_visibility",
                              f"must be between 0 and 1, not {self.second_visibility:g}")
        if image is None or self.upscaler == "None":
            return models
        k = self.scale(image)  # the upscaler's own output (before a crop) and the landed size, both bounded
        for w, h in ((int(image.width * k), int(image.height * k)), self.output_size(image)):
            if w * h > MAX_OUTPUT_PIXELS or max(w, h) > MAX_OUTPUT_SIDE:
                raise Sd1kitError("upscale", f"{w}x{h} is over {MAX_OUTPUT_PIXELS >> 20} MP or {MAX_OUTPUT_SIDE} "
                                             "a side")
            if min(w, h) < 8:
                raise Sd1kitError("upscale", f"{w}x{h}: a side under 8 pixels")
        return models

    def scale(self, image: Image.Image) -> float:
        if self.to is None:
            return self.by
        return max(self.to[0] / image.width, self.to[1] / image.height)

    def output_size(self, image: Image.Image) -> tuple[int, int]:
        if self.upscaler == "None":
            return image.size
        if self.to is not None and self.crop:
            return self.to
        k = self.scale(image)
        return int(image.width * k // 8 * 8), int(image.height * k // 8 * 8)

    def info(self) -> dict:
        if self.upscaler == "None":
            return {}
        out = ({"Postprocess upscale to": "{}x{}".format(*self.to)} if self.to is not None
               else {"Postprocess upscale by": f"{self.by:g}"})
        out["Postprocess upscaler"] = self.upscaler
        if self.second != "None" and self.second_visibility > 0:
            out["Postprocess upscaler 2"] = self.second
        return out


def upscale_by(image: Image.Image, name: str, scale: float, model=None, tiles: tuple = (None, None)) -> Image.Image:
    """A1111's `Upscaler.upscale`: for a resampling upscaler here, for a model upscaler (`model`, an
    upscalers.UpscalerFile; `tiles` = its tile and overlap) by `upscalers.upscale_with`."""
    if model is not None:
        from sd1kit.upscalers import upscale_with

        return upscale_with(image, model, scale, *tiles)
    dest = int(image.width * scale // 8 * 8), int(image.height * scale // 8 * 8)
    if image.width < dest[0] or image.height < dest[1]:
        image = image.resize((int(image.width * scale), int(image.height * scale)), PIXEL_UPSCALERS[name])
    if image.size != dest:
        image = image.resize(dest, Image.LANCZOS)
    return image


def run_upscale(image: Image.Image, spec: Upscale) -> Image.Image:
    """`image` upscaled as `spec` asks (checked first, output bounded before any work)."""
    first, second = spec.check(image)
    if spec.upscaler == "None":
        return image
    image = image.convert("RGB")
    scale, tiles = spec.scale(image), (spec.tile, spec.overlap)
    out = upscale_by(image, spec.upscaler, scale, first, tiles)
    if spec.second != "None" and spec.second_visibility > 0:
        out = Image.blend(out, upscale_by(image, spec.second, scale, second, tiles), spec.second_visibility)
    if spec.to is not None and spec.crop:
        cropped = Image.new("RGB", spec.to)
        cropped.paste(out, box=(spec.to[0] // 2 - out.width // 2, spec.to[1] // 2 - out.height // 2))
        out = cropped
    return out


def kept_texts(image: Image.Image, spec: Upscale) -> dict[str, str]:
    """The text chunks an Extras output keeps, as A1111 keeps them: the picture's own (each under 64 KiB), and the
    upscale named in a "postprocessing" one."""
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str) and len(v) < MAX_TEXT}
    info = ", ".join(f"{k}: {v}" for k, v in spec.info().items())
    if info:
        texts["postprocessing"] = info
    return texts
