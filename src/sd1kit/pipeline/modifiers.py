"""UNet modifiers of a generation plan: LoRA/LyCORIS, hypernetworks, token merging, DeepCache, ControlNet units, the TAESD decoder.

Each is one small object with the same hooks, composed in the plan's declared order (ComfyUI's model patches, as
objects): `check` refuses a combination before any work, `applied` patches and exactly restores the model for the
run, `wrap_unet` wraps the UNet module (DeepCache), `wrap` wraps the raw model call (ControlNet adds residuals),
`begin_pass` sees each pass's sigmas, `params` is its infotext, only of what ran."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch

from sd1kit.sampling.denoisers import unet_model

ORDER = ("lora", "hypernet", "token_merging", "deepcache", "controlnet", "taesd")


class Modifier:
    """The hooks with their do-nothing defaults."""

    kind = ""
    only: str | None = None  # the one pass it acts on ("first" / "hires"), applied around that pass; None: all

    def check(self, plan) -> str | None:
        return None

    def applied(self, model):
        return nullcontext()

    def wrap_unet(self, unet):
        return unet

    def wrap(self, raw):
        return raw

    def begin_pass(self, sigmas: torch.Tensor, schedule) -> None:
        pass

    def params(self) -> dict:
        return {}

    def ran(self) -> bool:
        return True

    def as_json(self) -> dict:
        return {"kind": self.kind, "infotext": self.params()}


@dataclass
class LoraModifier(Modifier):
    """The prompt's `<lora:...>` / `<lyco:...>` files, stacked, patched into the weights for the run."""

    stack: object  # adapters.stack.AdapterStack
    hashes: list[str]  # "name: short hash", A1111's "Lora hashes"
    names: list[str] = field(default_factory=list)
    only: str | None = None  # a hires prompt with its own networks: "first" / "hires" (A1111 activates each set)
    kind = "lora"

    @contextmanager
    def applied(self, model):
        from sd1kit.adapters.live import adapters_applied
        from sd1kit.pipeline.openvino_backend import baked_modules, is_openvino

        if is_openvino(model.modules.unet):  # baked into the file's weights and converted (cached)
            saved = model.modules
            model.modules = baked_modules(model, self.stack)
            try:
                yield
            finally:
                model.modules = saved
            return
        with adapters_applied(model.modules, self.stack):
            yield

    def params(self) -> dict:
        return {"Lora hashes": ", ".join(self.hashes)}

    def ran(self) -> bool:
        return any(r.applied for r in self.stack.reports) if self.stack.reports else True

    def as_json(self) -> dict:
        return {**super().as_json(), "adapters": self.names, "pass": self.only or "all"}


@dataclass
class HypernetModifier(Modifier):
    """The prompt's `<hypernet:...>` files, in prompt order, on the context of every attention's keys and values
    (A1111's `apply_hypernetworks`), hooked for the run and removed after."""

    stack: list  # (adapters.hypernetwork.Hypernetwork, strength)
    hashes: list[str]  # "name: sha256[:10]"
    only: str | None = None
    kind = "hypernet"

    def check(self, plan) -> str | None:
        from sd1kit.pipeline.openvino_backend import is_openvino

        if is_openvino(plan.model.modules.unet):
            return "hypernetworks run on the torch backend (--backend torch)"
        return None

    @contextmanager
    def applied(self, model):
        from sd1kit.adapters.hypernetwork import hypernetworks_applied

        with hypernetworks_applied(model.modules.unet, self.stack):
            yield

    def params(self) -> dict:
        return {"Hypernetwork hashes": ", ".join(self.hashes)}

    def as_json(self) -> dict:
        return {**super().as_json(), "hypernetworks": [
            {"name": hn.name, "path": str(hn.path), "strength": w, **hn.structure.as_json()} for hn, w in self.stack],
            "pass": self.only or "all"}


@dataclass
class TokenMergingModifier(Modifier):
    """ToMe on the UNet's self-attention (tomesd with A1111's settings: no random merge choice, so pictures stay
    reproducible), removed afterwards."""

    ratio: float
    kind = "token_merging"
    patched: bool = False

    @contextmanager
    def applied(self, model):
        import tomesd

        unet = model.modules.unet
        tomesd.apply_patch(unet, ratio=self.ratio, use_rand=False, sx=2, sy=2, merge_attn=True,
                           merge_crossattn=False, merge_mlp=False)
        self.patched = True
        try:
            yield
        finally:
            tomesd.remove_patch(unet)

    def params(self) -> dict:
        return {"Token merging ratio": self.ratio}

    def ran(self) -> bool:
        return self.patched


@dataclass
class DeepCacheModifier(Modifier):
    """DeepCache: the whole UNet every `interval` calls, its shallow branch on cached deep features between.
    One wrapper per pass (its cache dropped when the next pass starts); the counts add up over the run."""

    interval: int
    kind = "deepcache"
    current: object = None  # the DeepCacheUNet of the pass being sampled
    full_calls: int = 0
    shallow_calls: int = 0
    most_calls: int = 0  # the most calls of one image's model call in one pass

    @contextmanager
    def applied(self, model):
        self.current, self.full_calls, self.shallow_calls, self.most_calls = None, 0, 0, 0
        try:
            yield
        finally:
            self._count()

    def wrap_unet(self, unet):
        from sd1kit.pipeline.deepcache import DeepCacheUNet

        self._count()
        self.current = DeepCacheUNet(unet, self.interval)
        return self.current

    def _count(self) -> None:
        u, self.current = self.current, None
        if u is not None:
            self.full_calls += u.full_calls
            self.shallow_calls += u.shallow_calls
            self.most_calls = max([self.most_calls, *u.calls.values()])

    def params(self) -> dict:
        return {"DeepCache": self.interval}

    def ran(self) -> bool:
        """It acted: some call ran the shallow branch, or there were too few calls per image for one."""
        u = self.current
        shallow = self.shallow_calls + (u.shallow_calls if u else 0)
        most = max([self.most_calls, *(u.calls.values() if u else ())])
        return shallow > 0 or 0 < most <= self.interval

    def as_json(self) -> dict:
        u = self.current
        return {**super().as_json(), "full_calls": self.full_calls + (u.full_calls if u else 0),
                "shallow_calls": self.shallow_calls + (u.shallow_calls if u else 0)}


@dataclass
class ControlNetModifier(Modifier):
    """ControlNet units: residuals added to the UNet's skip connections and middle block at every call."""

    controls: object  # pipeline.controlnet.ControlSet
    kind = "controlnet"

    def check(self, plan) -> str | None:
        from sd1kit.errors import Sd1kitError

        try:
            self.controls.check_fits(plan.model.modules.unet)
        except Sd1kitError as e:
            return str(e)
        return None

    def wrap(self, raw):
        controls = self.controls

        def run(x_in, t, context, image_cond, uncond=None, **unet_kwargs):
            down, mid = controls.residuals(x_in, t, context, uncond)
            if down is not None:
                unet_kwargs = {**unet_kwargs, "down_block_additional_residuals": down,
                               "mid_block_additional_residual": mid}
            return raw(x_in, t, context, image_cond, uncond, **unet_kwargs)
        run.accepts_uncond = True
        return run

    @contextmanager
    def applied(self, model):
        self.controls.calls.clear()
        yield

    def begin_pass(self, sigmas: torch.Tensor, schedule) -> None:
        self.controls.begin_pass(sigmas, schedule)

    def params(self) -> dict:
        from sd1kit.pipeline.controlnet import infotext_units

        return infotext_units(self.controls)

    def ran(self) -> bool:
        return any(used for _, used in self.controls.calls)

    def as_json(self) -> dict:
        return {**super().as_json(), "units": [i.unit.model for i in self.controls.active]}


@dataclass
class TaesdModifier(Modifier):
    """The tiny TAESD decoder in place of the VAE's (fast mode; A1111's "VAE Decoder: TAESD")."""

    path: str
    kind = "taesd"
    decoded: bool = False

    def decode(self, model, latents: torch.Tensor):
        from sd1kit.pipeline import images
        from sd1kit.pipeline.taesd import decode_taesd, load_taesd

        taesd = load_taesd(self.path, model.device, model.dtype)
        self.decoded = True
        return images.to_pictures(images.per_image(lambda z: decode_taesd(taesd, z), latents))

    @contextmanager
    def applied(self, model):
        self.decoded = False
        yield

    def params(self) -> dict:
        return {"VAE Decoder": "TAESD"}

    def ran(self) -> bool:
        return self.decoded


def composed_raw(unet, modifiers) -> object:
    """The raw model call with every modifier's wraps, in the plan's order."""
    for m in modifiers:
        unet = m.wrap_unet(unet)
    raw = unet_model(unet)
    for m in modifiers:
        raw = m.wrap(raw)
    return raw
