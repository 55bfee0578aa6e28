"""SD1 block weights as supermerger and sd-mecha define them: 26 values, BASE (text encoder, VAE, time
embedding), IN00-IN11, M00, OUT00-OUT11 (the UNet's final norm/conv counts as OUT11), and named presets."""

from __future__ import annotations

import re

from sd1kit.errors import Sd1kitError
from sd1kit.formats.keys.ldm import UNET_PREFIX

BLOCKS = ("BASE", *(f"IN{i:02}" for i in range(12)), "M00", *(f"OUT{i:02}" for i in range(12)))
_INPUT, _MIDDLE, _OUTPUT = (re.compile(r"\.input_blocks\.(\d+)\."), re.compile(r"\.middle_block\.(\d+)\."),
                            re.compile(r"\.output_blocks\.(\d+)\."))


def block_of(key: str) -> str:
    if not key.startswith(UNET_PREFIX) or ".time_embed" in key:
        return "BASE"
    if m := _INPUT.search(key):
        return f"IN{int(m.group(1)):02}"
    if _MIDDLE.search(key):
        return "M00"
    if m := _OUTPUT.search(key):
        return f"OUT{int(m.group(1)):02}"
    return "OUT11"  # out.0 / out.2, after the output blocks


def _v(values) -> tuple[float, ...]:
    return tuple(round(float(v), 10) for v in values)


_RAMP = [i / 12 for i in range(13)]  # 0 .. 1 over IN00 .. M00
_SMOOTH = [t * t * (3 - 2 * t) for t in _RAMP]
# BASE first, then the 25 UNet blocks. Presets defined by formula: flat, V and A ramps, smoothstep ramps.
PRESETS: dict[str, tuple[float, ...]] = {
    "ALL_A": _v([0] * 26), "ALL_B": _v([1] * 26), "FLAT_25": _v([0.25] * 26), "FLAT_75": _v([0.75] * 26),
    "GRAD_V": _v([0, *reversed(_RAMP[1:]), 0, *_RAMP[1:]]),
    "GRAD_A": _v([0, *_RAMP[:12], 1, *reversed(_RAMP[:12])]),
    "SMOOTHSTEP": _v([0, *_SMOOTH[:12], 1, *reversed(_SMOOTH[:12])]),
    "REVERSE-SMOOTHSTEP": _v([0, *(1 - s for s in _SMOOTH[:12]), 0, *(1 - s for s in reversed(_SMOOTH[:12]))]),
    "IN_ONLY": _v([0] + [1] * 12 + [0] * 13), "OUT_ONLY": _v([0] * 14 + [1] * 12),
}


def parse_blocks(value, where: str = "blocks") -> tuple[float, ...]:
    """A preset name, 26 numbers (BASE + 25 blocks), or 25 (BASE then taken from the method's alpha: None)."""
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip().upper() in PRESETS:
            return PRESETS[value.strip().upper()]
        value = [v for v in re.split(r"[,\s]+", value.strip()) if v]
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise Sd1kitError(where, f"expected a preset ({', '.join(PRESETS)}) or 25/26 numbers, not {value!r}") from None
    if len(numbers) not in (25, 26):
        raise Sd1kitError(where, f"{len(numbers)} block weights given; SD1 has 26 (BASE, IN00-IN11, M00, OUT00-OUT11)"
                                 " or 25 without BASE")
    return numbers


def weight_for(key: str, blocks: tuple[float, ...], default: float) -> float:
    if not blocks:
        return default
    index = BLOCKS.index(block_of(key))
    if len(blocks) == 25:
        return default if index == 0 else blocks[index - 1]
    return blocks[index]


# LoRA Block Weight (the A1111 `lbw=` extension): 26 values as above, or 17 for the blocks that hold attention
LBW_17 = ("BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00", *(f"OUT{i:02}" for i in range(3, 12)))


def parse_lbw(value: str, where: str = "lbw") -> dict[str, float]:
    """Block -> multiplier from a preset or 17 / 26 numbers; blocks a 17-value list leaves out keep 1."""
    text = value.strip()
    numbers = PRESETS.get(text.upper())
    if numbers is None:
        try:
            numbers = tuple(float(v) for v in re.split(r"[,\s]+", text) if v)
        except ValueError:
            raise Sd1kitError(where, f"expected a preset ({', '.join(PRESETS)}) or 17/26 numbers, not {value!r}") from None
    if len(numbers) == 26:
        return dict(zip(BLOCKS, numbers))
    if len(numbers) == 17:
        return {**dict.fromkeys(BLOCKS, 1.0), **dict(zip(LBW_17, numbers))}
    raise Sd1kitError(where, f"{len(numbers)} block weights; LoRA Block Weight takes 17 or 26")
