"""Where A1111 expects each kind of file: models/Stable-diffusion, Lora, LyCORIS, VAE, ControlNet, and embeddings/
beside models/ (under $SD1KIT_HOME, or the models folder given), and the yaml a v-prediction checkpoint needs
beside it under the checkpoint's own stem."""

from __future__ import annotations

import os
from pathlib import Path

from sd1kit.errors import Sd1kitError

FOLDERS = {"checkpoint": "Stable-diffusion", "unet": "Stable-diffusion", "lora": "Lora", "lycoris": "LyCORIS",
           "vae": "VAE", "controlnet": "ControlNet", "embedding": "embeddings"}
KIND_CHOICES = ("checkpoint", "lora", "lycoris", "vae", "controlnet", "embedding")


def models_root(models_dir: str | os.PathLike | None = None) -> Path:
    return Path(models_dir) if models_dir else Path(os.environ.get("SD1KIT_HOME", ".")) / "models"


def files_under(folder: Path, suffixes) -> list[Path]:
    """The files in `folder` and its subfolders whose suffix is one of `suffixes` (lower case), sorted without
    regard to case; none when there is no such folder."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file()),
                  key=lambda p: str(p).lower())


def folder_for(kind: str, root: Path) -> Path:
    """The A1111 folder of a kind; textual inversions live in embeddings/ beside models/, as in A1111."""
    if kind not in FOLDERS:
        raise Sd1kitError("--to", f"cannot place a {kind}; give one of {', '.join(KIND_CHOICES)}")
    return root.parent / "embeddings" if kind == "embedding" else root / FOLDERS[kind]


def detect_kind(path: Path) -> str | None:
    """The kind of a file by reading it (no code runs: pickles are only scanned)."""
    from sd1kit.models.detect import detect
    from sd1kit.formats.source import open_source

    try:
        kind = detect(open_source(path)).kind
    except Sd1kitError:
        return None
    return kind if kind in FOLDERS else None


def write_yaml_beside(checkpoint: Path, prediction: str = "v") -> tuple[Path, str]:
    """sd1kit's own SD1 yaml (never a downloaded one: A1111 instantiates what a yaml names) beside a checkpoint,
    under its stem; an existing one is kept. Returns (path, "written" | "present")."""
    from sd1kit.formats.atomic import write_bytes_atomic
    from sd1kit.formats.yaml_config import sd1_yaml

    beside = checkpoint.with_suffix(".yaml")
    if beside.exists():
        return beside, "present"
    channels = 4
    try:
        from sd1kit.formats.source import open_source

        shape = open_source(checkpoint).shapes.get("model.diffusion_model.input_blocks.0.0.weight")
        channels = int(shape[1]) if shape else 4
    except Sd1kitError:
        pass
    write_bytes_atomic(beside, sd1_yaml(prediction, channels).encode())
    return beside, "written"
