"""Adapters applied to a loaded model for a while: the patched weights are computed once (W + ΣΔW in fp32, cast to
the weight's dtype), the originals kept, and put back exactly on removal, so the model is bit-identical after."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from sd1kit.adapters.stack import AdapterStack
from sd1kit.formats.keys.diffusers import unet_keymap
from sd1kit.formats.keys.ldm import TE_PREFIX, UNET_PREFIX
from sd1kit.models.build import SD1Modules, clip_module_prefix


def live_parameter(modules: SD1Modules, ldm_key: str) -> torch.nn.Parameter | None:
    """The live parameter behind a canonical LDM key (UNet and text encoder)."""
    try:
        if ldm_key.startswith(UNET_PREFIX) and modules.unet is not None:
            path = unet_keymap(modules.unet_config.layout).to_diffusers(ldm_key[len(UNET_PREFIX):])
            return modules.unet.get_parameter(path) if path else None
        if ldm_key.startswith(TE_PREFIX) and modules.text_encoder is not None:
            prefix = clip_module_prefix(modules.text_encoder)
            return modules.text_encoder.get_parameter(prefix + ldm_key[len(TE_PREFIX):])
    except AttributeError:
        return None
    return None


def live_shapes(modules: SD1Modules) -> dict[str, tuple[int, ...]]:
    """Canonical LDM keys and shapes of the UNet and text encoder, without copying any weight."""
    from sd1kit.formats.keys.ldm import TE_PREFIX as TE

    shapes = {}
    if modules.unet is not None:
        keymap = unet_keymap(modules.unet_config.layout)
        for name, p in modules.unet.named_parameters():
            ldm = keymap.to_ldm(name)
            if ldm:
                shapes[UNET_PREFIX + ldm] = tuple(p.shape)
    if modules.text_encoder is not None:
        prefix = clip_module_prefix(modules.text_encoder)
        for name, p in modules.text_encoder.named_parameters():
            if name.startswith(prefix):
                shapes[TE + name[len(prefix):]] = tuple(p.shape)
    return shapes


class LivePatch:
    def __init__(self, modules: SD1Modules, stack: AdapterStack):
        self.originals: dict[torch.nn.Parameter, torch.Tensor] = {}
        try:
            self._apply(modules, stack)
            stack.check_applied()
        except BaseException:
            self.remove()
            raise

    def _apply(self, modules: SD1Modules, stack: AdapterStack) -> None:
        with torch.no_grad():
            for module in list(stack.targets):
                weight = live_parameter(modules, module + ".weight")
                if weight is None:
                    continue
                bias = live_parameter(modules, module + ".bias")
                d_w, d_b = stack.delta(module, weight.detach(), None if bias is None else bias.detach())
                for param, d in ((weight, d_w), (bias, d_b)):
                    if param is None or d is None:
                        continue
                    self.originals[param] = param.detach().clone()
                    param.copy_((param.float() + d.to(param.device)).to(param.dtype))

    def remove(self) -> None:
        with torch.no_grad():
            for param, original in self.originals.items():
                param.copy_(original)
        self.originals.clear()


@contextmanager
def adapters_applied(modules: SD1Modules, stack: AdapterStack):
    patch = None
    try:
        patch = LivePatch(modules, stack)
        yield patch
    finally:
        if patch is not None:
            patch.remove()
