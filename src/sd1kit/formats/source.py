"""Open any SD1-family file or folder as a `ModelSource`: canonical tensor names, shapes and dtypes from the
header (safetensors) or the safely loaded pickle, plus the container's quirks; tensor data read on demand."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sd1kit.errors import BadFileError
from sd1kit.formats import ckpt, safetensors_io
from sd1kit.formats.keys.diffusers import UNetLayout, VAELayout, is_vae_attention_projection, unet_keymap, vae_keymap
from sd1kit.formats.keys.ldm import POSITION_IDS, TE_PREFIX, UNET_PREFIX, VAE_PREFIX, canonical_name
from sd1kit.formats.safetensors_io import TORCH_TO_ST_DTYPE, TensorInfo

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                     "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
                     "diffusion_pytorch_model.bin", "pytorch_model.bin")
DIFFUSERS_PARTS = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "text_encoder": TE_PREFIX}


@dataclass
class ModelSource:
    path: Path
    container: str  # safetensors | ckpt (torch zip) | pickle (legacy torch) | diffusers
    tensors: dict[str, TensorInfo] = field(default_factory=dict)  # canonical name -> info
    metadata: dict[str, str] = field(default_factory=dict)
    quirks: list[str] = field(default_factory=list)
    training_state: list[str] = field(default_factory=list)
    unsafe_globals: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # weight files behind the source
    top_level_keys: list[str] = field(default_factory=list)  # a pickle's top-level keys (hypernetworks)
    _get: Callable[[str], object] | None = None  # canonical name -> tensor, read on demand

    @property
    def safe(self) -> bool:
        return not self.unsafe_globals

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.tensors.items()}

    def get_tensor(self, name: str):
        """One tensor by canonical name, read on demand (memory-mapped where the container allows)."""
        if self._get is None:
            raise BadFileError(self.path, "no tensors can be read from this file")
        if name not in self.tensors:
            raise KeyError(name)
        return self._get(name)

    def load_state_dict(self) -> dict:
        """All tensors under canonical names (position_ids and non-tensor entries left out)."""
        return {name: self.get_tensor(name) for name in self.tensors}


def open_source(path: str | os.PathLike) -> ModelSource:
    """Open a model file or diffusers folder. Raises BadFileError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise BadFileError(path, "no such file or directory")
    if path.is_dir():
        return _open_diffusers(path)
    size = path.stat().st_size
    if size == 0:
        raise BadFileError(path, "empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(16)
    if safetensors_io.looks_like_safetensors(head):
        return _open_safetensors(path)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" or path.suffix.lower() in PICKLE_SUFFIXES:
        return _open_pickle(path)
    if path.suffix.lower() == ".safetensors":
        raise BadFileError(path, "not a safetensors file (no JSON header); is it text or an HTML error page?")
    raise BadFileError(path, "unknown file format: neither safetensors nor a torch checkpoint")


def _canonical_infos(raw: dict[str, TensorInfo], source: ModelSource) -> dict[str, str]:
    """Fill source.tensors with canonical names; returns canonical -> original name."""
    originals = {}
    for name, info in raw.items():
        canonical = canonical_name(name)
        if canonical != name and "old CLIP layout (no text_model.)" not in source.quirks:
            source.quirks.append("old CLIP layout (no text_model.)")
        if canonical == POSITION_IDS:
            if info.dtype != "I64":
                source.quirks.append(f"position_ids stored as {info.dtype} (ignored; rebuilt as 0..76)")
            else:
                source.quirks.append("position_ids stored (ignored; rebuilt as 0..76)")
            continue
        source.tensors[canonical] = info
        originals[canonical] = name
    return originals


def _open_safetensors(path: Path) -> ModelSource:
    header = safetensors_io.read_header(path)
    source = ModelSource(path, "safetensors", metadata=dict(header.metadata), files=[path])
    originals = _canonical_infos(header.tensors, source)
    reader = safetensors_io.LazyReader(header)
    source._get = lambda name: reader.get(originals[name])
    return source


def _unwrap_checkpoint(obj, path: Path, source: ModelSource) -> dict:
    """A1111's unwrapping: take `state_dict`, then drop a nested key literally named `state_dict`."""
    if not isinstance(obj, dict):
        raise BadFileError(path, f"checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    if isinstance(obj.get("state_dict"), dict):
        source.quirks.append("state_dict wrapper")
        source.training_state = sorted(str(k) for k in obj if k != "state_dict")
        obj = obj["state_dict"]
    if "state_dict" in obj:
        source.quirks.append("nested 'state_dict' key among the weights (dropped)")
    return obj


def _open_pickle(path: Path) -> ModelSource:
    import torch

    scan = ckpt.scan_pickle_file(path)
    source = ModelSource(path, "ckpt" if scan.zip_format else "pickle", unsafe_globals=list(scan.unsafe_globals),
                         files=[path])
    if not scan.safe:
        return source
    obj = ckpt.load_torch_file(path, scan)
    source.top_level_keys = [str(k) for k in obj] if isinstance(obj, dict) else []
    weights = _unwrap_checkpoint(obj, path, source)
    tensors: dict = {}
    skipped = 0
    for k, v in weights.items():
        if isinstance(v, torch.Tensor):
            tensors[str(k)] = v
        elif isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values()) and "state_dict" != k:
            # A1111 textual inversion files nest {'string_to_param': {'*': tensor}}
            tensors.update({f"{k}.{sub}": t for sub, t in v.items()})
        elif k != "state_dict":
            skipped += 1
    if skipped:
        source.quirks.append(f"{skipped} non-tensor entries ignored")
    infos = {k: TensorInfo(TORCH_TO_ST_DTYPE.get(str(v.dtype), str(v.dtype)), tuple(v.shape)) for k, v in tensors.items()}
    originals = _canonical_infos(infos, source)
    source._get = lambda name: tensors[originals[name]]
    return source


def _weights_file(folder: Path) -> Path | None:
    return next((folder / n for n in DIFFUSERS_WEIGHTS if (folder / n).is_file()), None)


def _open_diffusers(path: Path) -> ModelSource:
    parts = {name: f for name in DIFFUSERS_PARTS if (f := _weights_file(path / name)) is not None}
    single = _weights_file(path)
    if not parts and single is not None:  # one model's folder (e.g. a diffusers ControlNet): its weights file
        inner = open_source(single)
        inner.path, inner.files = path, [single]
        inner.container = "diffusers"
        return inner
    if not parts:
        raise BadFileError(path, "a folder, but not a diffusers model (no unet/, vae/ or text_encoder/ weights)")
    source = ModelSource(path, "diffusers", files=list(parts.values()))
    origin: dict[str, tuple[ModelSource, str]] = {}  # canonical name -> (component file, diffusers name)
    for part, weights in parts.items():
        inner = open_source(weights)
        if not inner.safe:
            source.unsafe_globals += inner.unsafe_globals
            continue
        for diffusers_name, ldm_name in _diffusers_renames(part, list(inner.tensors), weights).items():
            info = inner.tensors[diffusers_name]
            if _needs_conv_shape(ldm_name, info.shape):
                info = TensorInfo(info.dtype, (*info.shape, 1, 1))
            source.tensors[ldm_name] = info
            origin[ldm_name] = (inner, diffusers_name)
    missing = [p for p in DIFFUSERS_PARTS if p not in parts]
    if missing:
        source.quirks.append(f"diffusers folder without {', '.join(missing)}")

    def get(name: str):
        inner, diffusers_name = origin[name]
        value = inner.get_tensor(diffusers_name)
        return value[:, :, None, None] if _needs_conv_shape(name, value.shape) else value

    source._get = get
    return source


def _needs_conv_shape(ldm_name: str, shape) -> bool:
    """diffusers stores the VAE attention projections as linear [c,c]; LDM as 1x1 convs [c,c,1,1]."""
    return ldm_name.startswith(VAE_PREFIX) and is_vae_attention_projection(ldm_name[len(VAE_PREFIX):]) \
        and len(shape) == 2


def _count(keys: list[str], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {m.group(1) for k in keys if (m := rx.match(k))}
    return len(found)


def _diffusers_renames(part: str, keys: list[str], where: Path) -> dict[str, str]:
    """diffusers names of one component -> canonical LDM names."""
    if part == "text_encoder":
        strip = "text_model." if any(k.startswith("text_model.") for k in keys) else ""
        return {k: TE_PREFIX + k[len(strip):] for k in keys if k[len(strip):] != "embeddings.position_ids"}
    if part == "unet":
        levels = _count(keys, r"down_blocks\.(\d+)\.")
        layout = UNetLayout(levels, _count(keys, r"down_blocks\.0\.resnets\.(\d+)\."),
                            tuple(any(k.startswith(f"down_blocks.{b}.attentions.") for k in keys) for b in range(levels)))
        keymap, prefix = unet_keymap(layout), UNET_PREFIX
    else:
        layout = VAELayout(_count(keys, r"encoder\.down_blocks\.(\d+)\."),
                           _count(keys, r"encoder\.down_blocks\.0\.resnets\.(\d+)\."))
        keymap, prefix = vae_keymap(layout), VAE_PREFIX
    renames = {}
    for k in keys:
        ldm = keymap.to_ldm(k)
        if ldm is None:
            raise BadFileError(where, f"{part} key {k!r} does not fit an SD1 {part}")
        renames[k] = prefix + ldm
    return renames


def sidecar_yaml_path(path: Path) -> Path | None:
    """`X.yaml` beside `X.safetensors` (A1111's rule); for a diffusers folder, none."""
    if path.is_dir():
        return None
    candidate = path.with_suffix(".yaml")
    return candidate if candidate.is_file() else None


