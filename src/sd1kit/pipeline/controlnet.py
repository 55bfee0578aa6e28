"""ControlNet units as A1111's ControlNet extension runs them: a control image (preprocessed by a detector that
needs no downloaded model, resized by the unit's resize mode), a weight, a guidance window (fractions of the
sampling steps), and a control mode: "Balanced" (the same residuals for cond and uncond), "My prompt is more
important" (soft injection: residual i scaled by 0.825^(12 - i)) and "ControlNet is more important" (soft
injection, and the residuals added to the conditional rows only). Guess mode is diffusers': residual scales from
0.1 to 1 in log space, conditional rows only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from sd1kit.errors import Sd1kitError

CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
MODULES = ("none", "invert", "canny", "binary", "scribble_xdog")


@dataclass
class ControlUnit:
    model: str  # ControlNet file or diffusers folder
    image: str | None = None  # the control image; None with `sd1kit qr` (which passes `picture`)
    module: str = "none"  # preprocessor
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: str = "Balanced"
    resize_mode: str = "Crop and Resize"
    pixel_perfect: bool = False
    processor_res: int = 512
    threshold_a: float | None = None
    threshold_b: float | None = None
    guess_mode: bool = False
    picture: Image.Image | None = field(default=None, repr=False)

    def validate(self) -> None:
        if self.control_mode not in CONTROL_MODES:
            raise Sd1kitError("control mode", f"{self.control_mode!r} is not one of {', '.join(CONTROL_MODES)}")
        if self.resize_mode not in RESIZE_MODES:
            raise Sd1kitError("resize mode", f"{self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")
        if self.module not in MODULES:
            raise Sd1kitError("preprocessor", f"{self.module!r} is not one of {', '.join(MODULES)} (detectors that "
                                              "need downloaded weights are not included)")
        if not 0 <= self.guidance_start <= self.guidance_end <= 1:
            raise Sd1kitError("guidance", "need 0 <= start <= end <= 1")


# --- preprocessors (HWC uint8 RGB in, HWC uint8 RGB out) ---

def _gray(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def preprocess(img: np.ndarray, module: str, a: float | None, b: float | None) -> np.ndarray:
    import cv2

    if module == "none":
        return img
    if module == "invert":
        return 255 - img
    if module == "canny":
        return _rgb(cv2.Canny(img, int(a if a is not None else 100), int(b if b is not None else 200)))
    if module == "binary":
        gray = _gray(img)
        if not a:  # 0: Otsu's threshold
            _, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        else:
            _, out = cv2.threshold(gray, int(a), 255, cv2.THRESH_BINARY)
        return _rgb(out)
    if module == "scribble_xdog":  # difference of Gaussians, thresholded: scribble lines from a picture
        f = img.astype(np.float32)
        dog = (255 - np.min(cv2.GaussianBlur(f, (0, 0), 5.0) - cv2.GaussianBlur(f, (0, 0), 0.5), axis=2)).clip(0, 255)
        out = np.zeros(img.shape[:2], np.uint8)
        out[2 * (255 - dog) > (a if a is not None else 32)] = 255
        return _rgb(out)
    raise Sd1kitError("preprocessor", f"unknown preprocessor {module!r}")


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    shrink = w * h < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def fit(img: np.ndarray, w: int, h: int, mode: str) -> np.ndarray:
    """The control image at the generation size by A1111's resize modes."""
    ih, iw = img.shape[:2]
    if mode == "Just Resize":
        return _resize(img, w, h)
    if mode == "Crop and Resize":
        k = max(w / iw, h / ih)
        rw, rh = max(w, round(iw * k)), max(h, round(ih * k))
        big = _resize(img, rw, rh)
        top, left = (rh - h) // 2, (rw - w) // 2
        return big[top:top + h, left:left + w]
    k = min(w / iw, h / ih)  # Resize and Fill: fit inside, extend the edges
    rw, rh = min(w, max(1, round(iw * k))), min(h, max(1, round(ih * k)))
    small = _resize(img, rw, rh)
    top, left = (h - rh) // 2, (w - rw) // 2
    return np.pad(small, ((top, h - rh - top), (left, w - rw - left), (0, 0)), mode="edge")


def preprocessor_resolution(unit: ControlUnit, raw_w: int, raw_h: int, w: int, h: int) -> int:
    """A1111's pixel-perfect rule: the detector runs at the resolution the image ends up at."""
    if not unit.pixel_perfect:
        return unit.processor_res
    k0, k1 = h / raw_h, w / raw_w
    k = min(k0, k1) if unit.resize_mode == "Resize and Fill" else max(k0, k1)
    return int(round(k * min(raw_h, raw_w)))


def control_image(unit: ControlUnit, w: int, h: int) -> np.ndarray:
    if unit.picture is not None:
        picture = unit.picture
    else:
        try:
            with Image.open(unit.image) as im:
                picture = im.convert("RGB")
        except (OSError, ValueError, TypeError) as e:
            raise Sd1kitError(unit.image or "control image", f"not a readable image ({e.__class__.__name__})") from None
    img = np.asarray(picture.convert("RGB"))
    res = preprocessor_resolution(unit, img.shape[1], img.shape[0], w, h)
    return fit(detect_map(img, unit.module, res, unit.threshold_a, unit.threshold_b), w, h, unit.resize_mode)


def detect_map(img: np.ndarray, module: str, res: int, a: float | None, b: float | None) -> np.ndarray:
    """A preprocessor's map of an RGB picture, run with its short side at `res` (the extension's processor
    resolution); "none" leaves the picture as it is."""
    if module == "none":
        return img
    w, h = detect_size(img.shape[1], img.shape[0], res)
    return preprocess(_resize(img, w, h), module, a, b)


MAX_DETECT_PIXELS = 16 << 20


def detect_size(width: int, height: int, res: int) -> tuple[int, int]:
    """The size a detector runs at (short side `res`), refused past MAX_DETECT_PIXELS (a thin picture at a high
    processor resolution would be gigapixels)."""
    k = res / min(width, height)
    w, h = max(1, round(width * k)), max(1, round(height * k))
    if w * h > MAX_DETECT_PIXELS:
        raise Sd1kitError("processor resolution", f"a {width}x{height} picture at {res} would be {w}x{h}, over "
                                                  f"{MAX_DETECT_PIXELS >> 20} MP")
    return w, h


# --- running units during sampling ---

@dataclass
class _Active:
    unit: ControlUnit
    net: object  # LoadedControlNet
    scales: list[float]
    cond_only: bool
    hints: dict = field(default_factory=dict)  # (w, h) -> hint tensor [1, 3, h, w] in 0..1


def unit_scales(unit: ControlUnit) -> tuple[list[float], bool]:
    if unit.guess_mode:
        return [unit.weight * 10 ** (-1 + i / 12) for i in range(13)], True
    if unit.control_mode == "Balanced":
        return [unit.weight] * 13, False
    return [unit.weight * 0.825 ** (12 - i) for i in range(13)], unit.control_mode == CONTROL_MODES[2]


class ControlSet:
    """All units of a generation; `residuals` is called by the UNet wrapper at every model call."""

    def __init__(self, units: list[ControlUnit], device, dtype):
        from sd1kit.models.controlnet import load_controlnet

        self.active = []
        for unit in units:
            unit.validate()
            scales, cond_only = unit_scales(unit)
            self.active.append(_Active(unit, load_controlnet(unit.model, device, dtype), scales, cond_only))
        self.timesteps: torch.Tensor | None = None
        self.first_size: tuple[int, int] | None = None  # latent size of the first pass; another size = hires
        self.calls = []  # (progress, [unit indices applied]) for tests and reports

    def check_fits(self, unet) -> None:
        """A ControlNet is trained beside one UNet topology: its residuals cannot be added to another's."""
        want = (tuple(unet.config.block_out_channels), unet.config.cross_attention_dim)
        for item in self.active:
            config = item.net.module.config
            have = (tuple(config.block_out_channels), config.cross_attention_dim)
            if have != want:
                raise Sd1kitError(item.unit.model, f"a ControlNet for a UNet of widths {have[0]} and text width "
                                                   f"{have[1]}; the model's are {want[0]} and {want[1]}")

    def begin_pass(self, sigmas: torch.Tensor, schedule) -> None:
        """The pass's timesteps, to place each model call in the guidance windows."""
        positive = sigmas[sigmas > 0]
        self.timesteps = schedule.sigma_to_t(positive.float().cpu())
        self.steps = len(positive)

    def _progress(self, t: torch.Tensor) -> float:
        if self.timesteps is None or self.steps == 0:
            return 0.0
        done = int((self.timesteps > float(t.flatten()[0]) + 1e-3).sum())
        return done / self.steps

    def _hint(self, item: _Active, w: int, h: int, device, dtype) -> torch.Tensor:
        if (w, h) not in item.hints:
            img = control_image(item.unit, w, h)
            item.hints[(w, h)] = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float().div(255)
        return item.hints[(w, h)].to(device=device, dtype=dtype)

    @torch.no_grad()
    def residuals(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, uncond: torch.Tensor | None):
        progress = self._progress(t)
        self.first_size = self.first_size or tuple(x.shape[2:])
        in_hires = tuple(x.shape[2:]) != self.first_size
        down_total, mid_total, used = None, None, []
        for index, item in enumerate(self.active):
            unit = item.unit
            if progress < unit.guidance_start or progress > unit.guidance_end:
                continue
            net = item.net.module
            dtype = next(net.parameters()).dtype
            h, w = x.shape[2] * 8, x.shape[3] * 8
            hint = self._hint(item, w, h, x.device, dtype).expand(x.shape[0], -1, -1, -1)
            down, mid = net(x.to(dtype), t.to(x.device), encoder_hidden_states=context.to(dtype),
                            controlnet_cond=hint, return_dict=False)
            scales = item.scales
            if in_hires and unit.module == "canny" and unit.control_mode == "Balanced" and not unit.guess_mode:
                scales = [unit.weight * 0.825 ** (12 - i) for i in range(13)]  # A1111 forces soft injection here
            outs = [r.to(x.dtype) * s for r, s in zip([*down, mid], scales)]
            if item.cond_only and uncond is not None:
                keep = (~uncond).to(x.dtype).reshape(-1, 1, 1, 1)
                outs = [o * keep for o in outs]
            if down_total is None:
                down_total, mid_total = outs[:-1], outs[-1]
            else:
                down_total = [a + b for a, b in zip(down_total, outs[:-1])]
                mid_total = mid_total + outs[-1]
            used.append(index)
        self.calls.append((progress, used))
        return down_total, mid_total


def infotext_units(controls: ControlSet) -> dict[str, str]:
    """`ControlNet N: "Module: ..., Model: name [hash], Weight: ..."`, as A1111's ControlNet extension writes."""
    params = {}
    for i, item in enumerate(controls.active):
        u = item.unit
        model = f"{item.net.name} [{item.net.short_hash[:8]}]" if item.net.short_hash else item.net.name
        fields = [("Module", u.module), ("Model", model), ("Weight", _num(u.weight)),
                  ("Resize Mode", u.resize_mode), ("Processor Res", str(u.processor_res)),
                  ("Threshold A", _num(u.threshold_a if u.threshold_a is not None else -1)),
                  ("Threshold B", _num(u.threshold_b if u.threshold_b is not None else -1)),
                  ("Guidance Start", _num(u.guidance_start)), ("Guidance End", _num(u.guidance_end)),
                  ("Pixel Perfect", str(u.pixel_perfect)), ("Control Mode", u.control_mode)]
        if u.guess_mode:
            fields.append(("Guess Mode", "True"))
        params[f"ControlNet {i}"] = ", ".join(f"{k}: {v}" for k, v in fields)
    return params


def parse_unit_text(text: str) -> dict[str, str]:
    """The fields of one `ControlNet N` infotext value."""
    out = {}
    for part in text.split(", "):
        key, sep, value = part.partition(": ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _num(v) -> str:
    from sd1kit.metadata.picture import text_number

    return text_number(float(v))


def unit_from_infotext(text: str, find_model) -> ControlUnit:
    """A unit from `ControlNet N` fields; `find_model(name, hash)` resolves the model file."""
    f = parse_unit_text(text)
    model = f.get("Model", "")
    name, _, tag = model.partition(" [")
    number = lambda k, d: float(f[k]) if k in f else d
    a, b = number("Threshold A", -1), number("Threshold B", -1)
    return ControlUnit(str(find_model(name.strip(), tag.rstrip("]") or None)), None, f.get("Module", "none"),
                       number("Weight", 1.0), number("Guidance Start", 0.0), number("Guidance End", 1.0),
                       f.get("Control Mode", "Balanced"), f.get("Resize Mode", "Crop and Resize"),
                       f.get("Pixel Perfect") == "True", int(number("Processor Res", 512)),
                       None if a < 0 else a, None if b < 0 else b, f.get("Guess Mode") == "True")
