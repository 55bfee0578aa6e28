"""`import spandrel` on machines whose torchvision is missing or broken.

spandrel (the architecture loader ComfyUI and A1111 use) imports torchvision when it is imported, for two
architectures only: LaMa (`torchvision.transforms.functional.InterpolationMode` and `rotate`) and RestoreFormer
(`normalize`). sd1kit never runs either. sd1kit keeps torch 2.13.0 (CPU) pinned, and the torchvision wheels PyPI has
for it are CUDA builds that fail to import beside it ("operator torchvision::nms does not exist") and would break
transformers, so `scripts/setup` installs spandrel with `--no-deps` and no torchvision at all.

So `import_spandrel()` imports spandrel normally when torchvision imports; otherwise (ImportError, or any error from
a broken torchvision, whose half-imported `torchvision*` / `spandrel*` modules are then purged from `sys.modules`) it
puts a minimal stand-in `torchvision.transforms.functional` into `sys.modules` for the duration of `import spandrel`
only, and removes it afterwards, so nothing else ever sees a fake torchvision. The stand-in has an
`InterpolationMode` enum and `rotate` / `normalize` functions that raise an Sd1kitError saying that architecture
needs torchvision. Without spandrel at all: one line saying how to install it.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import sys
import threading
import types
import warnings

from sd1kit.errors import Sd1kitError

INSTALL = (".venv/bin/python -m pip install --no-deps spandrel==0.4.2 (it needs einops, safetensors and numpy; "
           "`pip install 'sd1kit[upscalers]'` where torchvision works)")
STAND_IN = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
_LOCK = threading.Lock()


class InterpolationMode(enum.Enum):
    """torchvision's names, so spandrel's LaMa module can be imported (never used by sd1kit)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _needs_torchvision(name: str):
    def refuse(*args, **kwargs):
        raise Sd1kitError("torchvision", f"this architecture needs torchvision ({name}), which is not installed "
                                         "beside sd1kit's torch; sd1kit's upscalers do not use it")
    refuse.__name__ = name
    return refuse


def _stand_in_modules() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name, "sd1kit's stand-in, only while spandrel is imported") for name in STAND_IN}
    functional = modules["torchvision.transforms.functional"]
    functional.InterpolationMode = InterpolationMode
    functional.rotate = _needs_torchvision("rotate")
    functional.normalize = _needs_torchvision("normalize")
    modules["torchvision"].__path__ = []
    modules["torchvision.transforms"].__path__ = []
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = functional
    return modules


def _purge(*prefixes: str) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in prefixes]:
        del sys.modules[name]


def _torchvision_works() -> bool:
    try:
        importlib.import_module("torchvision.transforms.functional")
        return True
    except Exception:  # noqa: BLE001 - ImportError, or a CUDA build failing against this torch (RuntimeError)
        _purge("torchvision", "spandrel")
        return False


def _import_with_stand_in():
    modules = _stand_in_modules()
    sys.modules.update(modules)
    try:
        return importlib.import_module("spandrel")
    except Exception:
        _purge("spandrel")
        raise
    finally:
        for name, module in modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def import_spandrel():
    """The spandrel module (imported once); Sd1kitError in one line when it is not installed or fails to import."""
    with _LOCK:
        loaded = sys.modules.get("spandrel")
        if loaded is not None and hasattr(loaded, "ModelLoader"):
            return loaded
        if importlib.util.find_spec("spandrel") is None:
            raise Sd1kitError("spandrel", f"not installed (model upscalers need it): {INSTALL}")
        # SwinIR / HAT call torch.meshgrid without `indexing`, which torch warns about on every tile
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release", category=UserWarning)
        try:
            if _torchvision_works():
                return importlib.import_module("spandrel")
            return _import_with_stand_in()
        except Sd1kitError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken install is one line, not a traceback
            raise Sd1kitError("spandrel", f"could not be imported ({e.__class__.__name__}: {str(e)[:160]}); "
                                          f"reinstall it: {INSTALL}") from None
