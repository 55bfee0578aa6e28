"""The QR-art workflow: a QR code drawn for QR Code Monster (dark modules black on the #808080 grey the model was
trained with), generation with it as the control image, and a scan check of each result with zxing-cpp; a weight
sweep stops at the lowest weight whose picture still scans."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from sd1kit.errors import Sd1kitError

GREY = 128
ERROR_LEVELS = ("L", "M", "Q", "H")


def qr_image(text: str, error: str = "H", module_px: int = 16, border: int = 4, size: tuple[int, int] | None = None,
             grey: int = GREY) -> Image.Image:
    """The code for `text`: black dark modules, grey light modules and quiet zone; centred on a grey canvas of
    `size` when given (the code scaled down by whole modules if it does not fit)."""
    import segno

    if error.upper() not in ERROR_LEVELS:
        raise Sd1kitError("--error", f"error correction must be one of {', '.join(ERROR_LEVELS)}")
    if not text:
        raise Sd1kitError("qr", "nothing to encode")
    try:
        code = segno.make(text, error=error.lower(), micro=False, boost_error=False)
    except Exception as e:  # noqa: BLE001 - segno raises its own DataOverflowError and ValueError kinds
        raise Sd1kitError("qr", f"cannot encode this text: {e}") from None
    matrix = np.array([[bool(v) for v in row] for row in code.matrix], dtype=bool)
    matrix = np.pad(matrix, border, constant_values=False)
    n = matrix.shape[0]
    if size is not None:
        module_px = max(1, min(module_px, min(size) // n))
    pixels = np.where(np.kron(matrix, np.ones((module_px, module_px), dtype=bool)), 0, grey).astype(np.uint8)
    picture = Image.fromarray(pixels, "L").convert("RGB")
    if size is None:
        return picture
    canvas = Image.new("RGB", size, (grey, grey, grey))
    canvas.paste(picture, ((size[0] - picture.width) // 2, (size[1] - picture.height) // 2))
    return canvas


def scan(picture: Image.Image) -> str | None:
    """The text a QR decoder reads from the picture, or None."""
    import zxingcpp

    results = zxingcpp.read_barcodes(picture.convert("RGB"))
    texts = [r.text for r in results if r.valid and r.format == zxingcpp.BarcodeFormat.QRCode]
    return texts[0] if texts else None


@dataclass
class QRResult:
    weight: float
    image: object  # GeneratedImage
    decoded: str | None
    scans: bool


@dataclass(frozen=True)
class QRCode:
    """What to encode and how the code is drawn (see `qr_image`)."""

    text: str
    error: str = "H"
    module_px: int = 16
    border: int = 4

    def image(self, size: tuple[int, int]) -> Image.Image:
        return qr_image(self.text, self.error, self.module_px, self.border, size)


def qr_generate(code: QRCode, controlnet: str, request, model, weights: list[float],
                callback=None) -> list[QRResult]:
    """Generate with the code as the control image at each weight in order; stop at the first that scans."""
    from sd1kit.pipeline.controlnet import ControlUnit
    from sd1kit.pipeline.generate import generate
    from sd1kit.pipeline.plan import resolve_seed

    text, control = code.text, code.image((request.width, request.height))
    request = request.with_(seed=resolve_seed(request.seed))  # one seed for every weight of a sweep
    results = []
    for weight in weights:
        unit = ControlUnit(controlnet, None, weight=weight, resize_mode="Resize and Fill", picture=control)
        generated = generate(request.with_(controlnets=[unit]), model, callback=callback)
        for image in generated.images:
            decoded = scan(image.image)
            results.append(QRResult(weight, image, decoded, decoded == text))
        if any(r.scans for r in results if r.weight == weight):
            break
    return results
