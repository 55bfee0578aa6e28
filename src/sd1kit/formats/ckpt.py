"""Torch pickles (.ckpt/.pt/.pth/.bin), read without executing pickle code.

Two layers: a static scan of every pickle in the file lists the globals it references (nothing is unpickled),
and only a file whose globals are all on the allow-list is loaded, by `torch.load(weights_only=True)` with inert
stand-ins for the few non-tensor globals that real SD1 checkpoints carry (formats.md §1).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from sd1kit.errors import BadFileError, UnsafePickleError
from sd1kit.formats import pickle_scan, torch_zip
from sd1kit.formats.pickle_scan import CappedStream, scan_stream

_STORAGES = ("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool")
# Globals a legitimate SD1 checkpoint may reference (WD1.3 / NAI / SD1.x pickle scans, formats.md §1).
ALLOWED_GLOBALS = frozenset(
    {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
     "torch._utils._rebuild_parameter", "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter",
     "torch.Size", "_codecs.encode",
     "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
     "torch.serialization._get_layout", "torch.float32", "torch.float16", "torch.bfloat16"}
    | {f"torch.{s}Storage" for s in _STORAGES}
    | {f"numpy.dtypes.{n}DType" for n in ("Float64", "Float32", "Float16", "Int64", "Int32", "Bool")}
)
# Training-state classes (pytorch_lightning callbacks) carry no weights: they load as inert stand-ins.
INERT_PREFIXES = ("pytorch_lightning.callbacks.", "lightning.pytorch.callbacks.")

_PICKLE_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy (non-zip) format marker


@dataclass(frozen=True)
class PickleScan:
    globals: tuple[str, ...]
    unsafe_globals: tuple[str, ...]
    zip_format: bool
    stored: bool = True  # every zip member uncompressed: the tensors can be memory-mapped

    @property
    def safe(self) -> bool:
        return not self.unsafe_globals


def is_allowed(name: str) -> bool:
    return name in ALLOWED_GLOBALS or (name.startswith(INERT_PREFIXES) and name.count(".") >= 3)


def scan_pickle_file(path: str | os.PathLike) -> PickleScan:
    """List every global referenced by the pickles torch would load from this file, without unpickling anything.

    The container is decided as torch decides it (torch.serialization: the first four bytes say zip; otherwise
    the tar loader is tried, then the legacy stream of pickles), and the zip layout is accepted only where every
    reader agrees on it (formats.torch_zip). Each pickle is walked with bounds (formats.pickle_scan).
    """
    path = Path(path)
    found: list[str] = []
    zip_format, stored = False, True
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            zip_format = f.read(4) == torch_zip.LOCAL
            f.seek(0)
            if zip_format:
                stored = _scan_zip(path, f, size, found)
            else:
                _scan_legacy(path, f, size, found)
    except OSError as e:
        raise BadFileError(path, f"unreadable torch file ({e.strerror or e})") from None
    except BadFileError:
        if not any(not is_allowed(g) for g in found):
            raise  # corrupt and nothing unsafe seen: report the corruption; else report what is unsafe
    ordered = tuple(dict.fromkeys(found))
    return PickleScan(ordered, tuple(g for g in ordered if not is_allowed(g)), zip_format, stored)


MAX_PICKLE_MEMBERS = 16  # a torch zip holds data.pkl (and TorchScript's constants.pkl, refused)


def _scan_zip(path: Path, f, size: int, found: list[str]) -> bool:
    """Scan the archive's pickles; return whether every member is stored uncompressed."""
    layout = torch_zip.read_zip_layout(path, f, size)
    if layout.find("data.pkl") is None:
        raise BadFileError(path, "zip file without data.pkl: not a torch checkpoint")
    if layout.find("constants.pkl") is not None:
        raise BadFileError(path, "a TorchScript archive, not a checkpoint: refused")
    pickles = [m for m in layout.members if torch_zip.ascii_lower(m.name).endswith(".pkl")]
    if len(pickles) > MAX_PICKLE_MEMBERS:
        raise BadFileError(path, f"zip archive with {len(pickles)} pickles: not a torch checkpoint")
    for member in pickles:
        data = torch_zip.read_member(path, f, member, pickle_scan.MAX_PICKLE_BYTES)
        scan_stream(io.BytesIO(data), path, found)
    return all(m.method == torch_zip.STORED for m in layout.members)


def _scan_legacy(path: Path, f, size: int, found: list[str]) -> None:
    """torch's legacy format: magic number, protocol, sys_info, the object, storage keys; then raw storage bytes."""
    if _opens_as_tar(f):
        raise BadFileError(path, "a tar-format torch file (torch < 0.4): refused, as torch's own loader refuses it "
                                 "with weights_only")
    f.seek(0)
    values = []
    for i in range(5):
        if i and not f.peek(1):
            break  # a plain pickle has one stream only: stop at the end of the file
        values.append(scan_stream(CappedStream(f, pickle_scan.MAX_PICKLE_BYTES, path), path, found))
    if torch_zip.ends_like_a_zip(f, size):
        raise BadFileError(path, "a legacy torch pickle that ends with a zip archive: refused as ambiguous")
    if values[0] != [_PICKLE_MAGIC]:
        raise BadFileError(path, "not a torch checkpoint (no torch magic number at the start)")
    if len(values) < 5:
        raise BadFileError(path, "truncated legacy torch checkpoint (fewer than its five pickles)")


def _opens_as_tar(f) -> bool:
    """Whether Python's tarfile takes the file's first block as a tar header, as torch's legacy loader tries."""
    import tarfile

    f.seek(0)
    try:
        with tarfile.open(fileobj=f, mode="r:"):
            return True
    except (tarfile.TarError, EOFError, ValueError, OSError):
        return False


class _InertCallback:
    """Stand-in for a training callback class; accepts any state and does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


def _numpy_scalar(dtype, data=None):
    import numpy as np

    return np.frombuffer(data, dtype=dtype)[0] if data is not None else np.zeros((), dtype=dtype)[()]


def _extra_safe_globals(scan: PickleScan) -> list:
    import numpy as np

    extra: list = [np.dtype, type(np.dtype("int64")), type(np.dtype("float64")), type(np.dtype("float32"))]
    extra += [(_numpy_scalar, "numpy.core.multiarray.scalar"), (_numpy_scalar, "numpy._core.multiarray.scalar")]
    extra += [(_InertCallback, g) for g in scan.globals if g.startswith(INERT_PREFIXES)]
    return extra


TORCH_FLOOR = (2, 10)  # GHSA-63cw-57p8-fm3p: weights_only unpickler memory corruption before 2.10 (and 2.6's fix)


def load_torch_file(path: str | os.PathLike, scan: PickleScan | None = None):
    """Load a torch pickle safely; raises UnsafePickleError (listing the globals) before anything is unpickled.

    Only a file the scanner accepted reaches `torch.load(weights_only=True)`; whatever that loader then objects
    to (a storage it cannot rebuild, a type it does not know) is one BadFileError line, never a traceback.
    """
    import torch

    path = Path(path)
    _check_torch_version(torch.__version__)
    scan = scan or scan_pickle_file(path)
    if not scan.safe:
        raise UnsafePickleError(path, list(scan.unsafe_globals))
    # a compressed member cannot be memory-mapped (torch would map the deflated bytes as the tensor's)
    mmap = scan.zip_format and scan.stored
    with torch.serialization.safe_globals(_extra_safe_globals(scan)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as e:  # noqa: BLE001 - any failure of the loader on a scanned file is "unreadable"
            raise BadFileError(path, f"unreadable torch file ({_first_line(e)})") from None


def _check_torch_version(version: str) -> None:
    numbers = tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())
    if numbers < TORCH_FLOOR:
        from sd1kit.errors import Sd1kitError

        raise Sd1kitError("torch", f"torch {version} has known flaws in its weights_only loader; sd1kit opens "
                                   f"pickles only with torch >= {'.'.join(map(str, TORCH_FLOOR))}")


def _first_line(e: BaseException) -> str:
    lines = [l for l in str(e).splitlines() if l.strip()]
    return lines[-1].strip()[:200] if lines else e.__class__.__name__
