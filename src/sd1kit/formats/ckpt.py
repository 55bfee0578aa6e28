"""Torch pickles (.ckpt/.pt/.pth/.bin), read without executing pickle code.

Two layers: a static scan of every pickle in the file lists the globals it references (nothing is unpickled),
and only a file whose globals are all on the allow-list is loaded, by `torch.load(weights_only=True)` with inert
stand-ins for the few non-tensor globals that real SD1 checkpoints carry (formats.md §1).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sd1kit.errors import BadFileError, UnsafePickleError

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

    @property
    def safe(self) -> bool:
        return not self.unsafe_globals


def is_allowed(name: str) -> bool:
    return name in ALLOWED_GLOBALS or (name.startswith(INERT_PREFIXES) and name.count(".") >= 3)


def scan_pickle_file(path: str | os.PathLike) -> PickleScan:
    """List every global referenced by the pickles in a torch file, without unpickling anything."""
    path = Path(path)
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(".pkl")]
                if not any(n.endswith("data.pkl") for n in names):
                    raise BadFileError(path, "zip file without data.pkl: not a torch checkpoint")
                for name in names:
                    _scan_stream(io.BytesIO(z.read(name)), path, found)
            zip_format = True
        else:
            with open(path, "rb") as f:
                if f.read(4) == b"PK\x03\x04":
                    raise BadFileError(path, "truncated or damaged torch checkpoint (its zip directory is unreadable)")
            with open(path, "rb", buffering=1 << 16) as f:
                # legacy format: magic, protocol, sys_info, the object, storage keys; then raw storage bytes.
                # A plain pickle has one stream only: stop at the end of the file.
                for i in range(5):
                    if i and not f.peek(1):
                        break
                    _scan_stream(f, path, found)
            zip_format = False
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise BadFileError(path, f"unreadable torch file ({e})") from None
    except BadFileError:
        if not any(not is_allowed(g) for g in found):
            raise  # corrupt and nothing unsafe seen: report the corruption; else report what is unsafe
        zip_format = False
    ordered = tuple(dict.fromkeys(found))
    return PickleScan(ordered, tuple(g for g in ordered if not is_allowed(g)), zip_format)


def _scan_stream(stream, path: Path, found: list[str]) -> None:
    """Append the globals of one pickle; STACK_GLOBAL operands are followed through the memo (as picklescan)."""
    recent, memo, ops = [], {}, 0
    try:
        for op, arg, _pos in pickletools.genops(stream):
            ops += 1
            name = op.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(f"{module}.{attr}")
                recent.append(None)
            elif name == "STACK_GLOBAL":
                strings = [v for v in recent[-2:] if isinstance(v, str)]
                found.append(".".join(strings) if len(strings) == 2 else "<unresolved STACK_GLOBAL>")
                recent.append(None)
            elif name in ("EXT1", "EXT2", "EXT4"):
                found.append(f"<copyreg extension {arg}>")
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = recent[-1] if recent else None
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                recent.append(memo.get(arg))
            elif isinstance(arg, str):
                recent.append(arg)
            else:
                recent.append(None)
            if name == "STOP":
                break
    except ValueError as e:
        raise BadFileError(path, f"corrupt pickle ({e})") from None
    if not ops:
        raise BadFileError(path, "not a pickle: empty stream")


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


def load_torch_file(path: str | os.PathLike, scan: PickleScan | None = None):
    """Load a torch pickle safely; raises UnsafePickleError (listing the globals) before anything is unpickled."""
    import torch

    path = Path(path)
    scan = scan or scan_pickle_file(path)
    if not scan.safe:
        raise UnsafePickleError(path, list(scan.unsafe_globals))
    with torch.serialization.safe_globals(_extra_safe_globals(scan)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=scan.zip_format)
        except RuntimeError as e:
            if not scan.zip_format or "mmap" not in str(e):
                raise BadFileError(path, f"unreadable torch file ({_first_line(e)})") from None
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError) as e:
            raise BadFileError(path, f"unreadable torch file ({_first_line(e)})") from None
        try:  # compressed zip entries cannot be memory-mapped
            return torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError) as e:
            raise BadFileError(path, f"unreadable torch file ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = [l for l in str(e).splitlines() if l.strip()]
    return lines[-1].strip()[:200] if lines else e.__class__.__name__
