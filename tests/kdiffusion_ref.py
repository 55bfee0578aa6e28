"""k-diffusion as a test-only reference: its sampling.py and external.py loaded without the package's
__init__ (which imports training code) and without torchvision (only its image helpers need it)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def load():
    """(sampling, external) modules of k-diffusion, or None when it is not installed."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        return None
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"], sys.modules["k_diffusion.external"]
    stubs = []
    if importlib.util.find_spec("torchvision") is None:  # stubbed only while k-diffusion imports
        stubs = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional"]
        for name in stubs:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    try:
        sampling = importlib.import_module("k_diffusion.sampling")
        external = importlib.import_module("k_diffusion.external")
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
    return sampling, external
