"""Regenerating from a picture: its A1111 parameters read back into a GenerationRequest, and the checkpoint it
names found by hash or name in the model folders."""

from __future__ import annotations

import os
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import hash_matches
from sd1kit.metadata.infotext import parse_infotext
from sd1kit.demo import DEMO_NAMES, demo_model
from sd1kit.metadata.backcompat import backcompat_switches, parse_version
from sd1kit.pipeline.options import options_from_infotext
from sd1kit.pipeline.request import GenerationRequest

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")

def read_picture_parameters(path: str | os.PathLike) -> str:
    """The picture's generation parameters as an A1111 infotext, whichever tool wrote them."""
    from sd1kit.metadata.readers import read_picture

    if not Path(path).is_file():
        raise Sd1kitError(path, "no such file")
    info = read_picture(path)
    if info.tool is None:
        why = f" ({info.warnings[0]})" if info.warnings else ""
        raise Sd1kitError(path, f"the picture carries no generation parameters{why}")
    if info.tool == "unknown" or not info.parameters:
        raise Sd1kitError(path, "the picture's metadata is not in a format sd1kit reads "
                                f"({', '.join(sorted(info.raw)) or 'empty'})")
    return info.to_infotext()


def request_from_infotext(text: str, where: str = "picture") -> tuple[GenerationRequest, dict]:
    """The request a picture's infotext describes (the option table's readers), every field it sets recorded as
    coming from the picture; A1111's back-compatibility switches for the picture's `Version` applied."""
    fields = parse_infotext(text)
    values = {"prompt": fields["Prompt"], "negative_prompt": fields["Negative prompt"],
              **options_from_infotext(fields, where)}
    sources = {k: "picture" for k in values}
    if fields.get("Lora hashes"):
        from sd1kit.metadata.picture import lora_hashes

        values["lora_hashes"] = lora_hashes({"Lora hashes": fields["Lora hashes"]})
    values.update(_hypernets(fields, values["prompt"]))
    if fields.get("Prediction") in ("v", "epsilon"):  # ComfyUI's ModelSamplingDiscrete, read from its graph
        values["prediction"] = fields["Prediction"]
        sources["prediction"] = "picture"
    for attr, value in _unwritten_defaults(fields).items():
        if attr not in values:
            values[attr] = value
            sources[attr] = "picture (not written: the default)"
    for attr, why in backcompat_switches(fields).items():
        if attr not in values:
            values[attr] = True
            sources[attr] = f"picture: {why}"
    return GenerationRequest(**values, sources=sources), fields


def _hypernets(fields: dict, prompt: str) -> dict:
    """`Hypernetwork hashes` ("name: sha256[:10], ..."), and a 2022 A1111 picture's `Hypernet` / `Hypernet hash`
    (the old 8-hex model hash) / `Hypernet strength`, which A1111's reader turns into a tag after the prompt."""
    from sd1kit.metadata.picture import lora_hashes

    out: dict = {}
    hashes = lora_hashes({"Lora hashes": fields.get("Hypernetwork hashes", "")})
    name = str(fields.get("Hypernet") or "").strip()
    if name:
        out["prompt"] = f"{prompt}<hypernet:{name}:{fields.get('Hypernet strength', '1.0')}>"
        if fields.get("Hypernet hash"):
            hashes.setdefault(name, str(fields["Hypernet hash"]).strip())
    if hashes:
        out["hypernet_hashes"] = hashes
    return out


def _unwritten_defaults(fields: dict) -> dict:
    """What a picture says by leaving a key out: A1111 (and sd1kit) write `Clip skip` only above 1, `CFG Rescale
    phi` only when on, `Noise Schedule` only for zero terminal SNR; A1111's reader fills the first in the same way.
    So a model's own defaults must not replace them when regenerating."""
    out = {"clip_skip": 1, "cfg_rescale": 0.0}
    version = str(fields.get("Version", ""))
    if parse_version(version) is not None or version.startswith("sd1kit"):
        out["zero_terminal_snr"] = False
    return out


def models_dir(kind: str = "Stable-diffusion") -> Path:
    """A1111's layout under $SD1KIT_HOME (default: the current folder): models/Stable-diffusion, models/VAE, ..."""
    return Path(os.environ.get("SD1KIT_HOME", ".")) / "models" / kind


def _find(name: str | None, short_hash: str | None, folder: Path, what: str) -> Path:
    """A file in `folder` (recursively) by hash (8, 10, 12 or 64 hex), else by name or stem, as A1111 looks."""
    candidates = [p for p in folder.rglob("*") if p.suffix.lower() in CHECKPOINT_SUFFIXES] if folder.is_dir() else []
    for path in candidates if short_hash else ():
        if hash_matches(path, short_hash):
            return path
    for path in candidates:
        if name and name in (path.stem, path.name):
            return path
    tag = f" [{short_hash}]" if short_hash else ""
    raise Sd1kitError(what, f"{what.lower() if what != 'ControlNet' else what} {name!r}{tag} is not in {folder}")


def find_model_file(name: str | None, short_hash: str | None, folder: Path, what: str) -> Path:
    """A model file or diffusers folder in `folder`, by stem / name, else by hash prefix (files only)."""
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if name and path.is_dir() and path.name == name:
                return path
    return _find(name, short_hash, folder, what)


def resolve_file(value: str | None, kind: str) -> str | None:
    """A path as given, or a name / short hash looked up in $SD1KIT_HOME/models/<kind> (A1111's folders)."""
    if value is None or Path(value).exists():
        return value
    looks_hashed = 8 <= len(value) <= 64 and all(c in "0123456789abcdefABCDEF" for c in value)
    what = {"VAE": "VAE", "ControlNet": "ControlNet"}.get(kind, "Model")
    return str(find_model_file(value, value if looks_hashed else None, models_dir(kind), what))


def find_checkpoint(name: str | None, short_hash: str | None, folder: Path) -> Path | None:
    if name in DEMO_NAMES:
        return demo_model(name)
    if not name and not short_hash:
        raise Sd1kitError("Model", "the picture does not say which checkpoint made it; give --model")
    return _find(name, short_hash, folder, "Model")


def find_vae(name: str | None, short_hash: str | None, folder: Path) -> Path | None:
    return _find(name, short_hash, folder, "VAE") if name or short_hash else None
