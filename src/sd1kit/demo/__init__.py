"""The demo world (procedural pictures whose content is known), the content checker that scores a picture against
its prompt, the quality evaluation over held-out prompts, the script that trains tiny SD1-topology models on the
world (`sd1kit dev train-demo`), and the two models it trained, shipped with the package: `sd1kit-demo`
(epsilon prediction, the default model) and `sd1kit-demo-v` (v-prediction, zero terminal SNR)."""

from __future__ import annotations

from pathlib import Path

from sd1kit.errors import Sd1kitError

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_NAMES = ("sd1kit-demo", "sd1kit-demo-v")  # the file stems: infotexts' "Model"


def demo_model(name: str = DEMO_NAMES[0]) -> Path:
    """The shipped demo checkpoint called `name`."""
    if name not in DEMO_NAMES:
        raise Sd1kitError("Model", f"{name!r} is not a built-in demo model ({', '.join(DEMO_NAMES)})")
    path = DEMO_DIR / f"{name}.safetensors"
    if not path.is_file():
        raise Sd1kitError(path, "the built-in demo model is missing from this install: reinstall sd1kit")
    return path
