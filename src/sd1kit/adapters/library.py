"""Finding adapter files as A1111 does: by the name used in `<lora:NAME:...>` (file stem, or the `ss_output_name`
alias in its metadata) or by the hash an infotext's `Lora hashes` gives, in models/Lora and models/LyCORIS."""

from __future__ import annotations

import os
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_hashes

SUFFIXES = (".safetensors", ".pt", ".ckpt", ".pth", ".bin")
FOLDERS = ("Lora", "LyCORIS")


def adapter_folders(root: str | os.PathLike | None = None) -> list[Path]:
    base = Path(root) if root else Path(os.environ.get("SD1KIT_HOME", ".")) / "models"
    return [base / f for f in FOLDERS if (base / f).is_dir()]


def request_folders(lora_dir: str | None) -> list[Path]:
    """A request's LoRA folders: `lora_dir` (several joined by os.pathsep), else $SD1KIT_HOME's."""
    return [Path(d) for d in str(lora_dir).split(os.pathsep) if d] if lora_dir else adapter_folders()


def models_lora_dir(models: Path | None) -> str | None:
    """The `lora_dir` of an A1111 models folder: its Lora/ and LyCORIS/ (those that exist)."""
    folders = adapter_folders(models) if models else []
    return os.pathsep.join(map(str, folders)) or None


def _files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)


def _relative(path: Path, folder: Path) -> str | None:
    try:
        return path.relative_to(folder).with_suffix("").as_posix()
    except ValueError:
        return None


def _alias(path: Path) -> str | None:
    if path.suffix.lower() != ".safetensors":
        return None
    from sd1kit.formats.safetensors_io import read_header

    try:
        return read_header(path).metadata.get("ss_output_name")
    except Exception:  # noqa: BLE001 - an unreadable header is reported when the file is used
        return None


def short_hash(path: Path) -> str:
    """A1111's `Lora hashes` value: the addnet hash for safetensors, sha256 otherwise, first 12 hex."""
    return file_hashes(path, addnet=True).addnet_short


def find_adapter(name: str, folders: list[Path], wanted_hash: str | None = None) -> Path:
    """The file a `<lora:NAME>` tag means, found only among the files under `folders` (as A1111 finds networks:
    by file name, a path relative to the folder, or the ss_output_name alias; then by hash). A name that is a path
    elsewhere (`/abs/x.safetensors`, `../x`) matches nothing: a prompt, a picture or an API request never opens a
    file outside the LoRA folders."""
    files = _files(folders)
    for path in files:
        if name in (path.stem, path.name) or any(_relative(path, f) == name for f in folders):
            return path
    for path in files:
        if _alias(path) == name:
            return path
    if wanted_hash:
        for path in files:
            if short_hash(path).startswith(wanted_hash.lower()) or \
                    file_hashes(path).sha256.startswith(wanted_hash.lower()):
                return path
    where = ", ".join(str(f) for f in folders) or "models/Lora (no such folder; set SD1KIT_HOME or --lora-dir)"
    tag = f" [{wanted_hash}]" if wanted_hash else ""
    raise Sd1kitError("LoRA", f"{name!r}{tag} is not in {where}")
