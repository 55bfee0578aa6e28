"""The OpenVINO backend: our own loaded modules (UNet, VAE decoder and encoder, text encoder) converted with
`openvino.convert_model`, compiled for the CPU in bf16 where it has bf16 dot products (f32 elsewhere), and wrapped
in small modules with the call signatures the pipeline uses for the torch ones, so that running on OpenVINO is
swapping the modules of a LoadedModel (`openvino_model`).

Converted models are cached on disk as IR (xml + bin) under $SD1KIT_CACHE_DIR/openvino (~/.cache/sd1kit/openvino),
keyed by what the IR depends on: the part, its config, the content hash of its weights (so LoRA / LyCORIS baked in
before conversion give another key), the OpenVINO version and this backend's version. Precision and shape policy
are compile options of one IR, not conversions: they are applied when the IR is compiled.

Modifiers: LoRA / LyCORIS run baked into the weights before conversion (`openvino_model(model, adapters=stack)`);
TAESD decodes with its own torch module; ControlNet, DeepCache and token merging are refused (`check_modifiers`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import sys
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.device import cpu_has_bf16

BACKEND_VERSION = 1
POLICIES = ("dynamic", "static")
# Measured with bench/openvino.py (full-size SD1.5 UNet, 512x512, CFG batch of 2, 2 cores, AVX512-BF16):
# see README. Static shapes compile one model per input shape (kept for the last few shapes).
DEFAULT_POLICY = "static"
STATIC_KEPT = 2  # compiled shapes kept per part under the static policy (each holds its own weight copy)

# what happened in this process, for tests and stats
STATS = {"conversions": 0, "cache_hits": 0, "compiles": 0, "compressions": 0, "fallbacks": 0}

REFUSED = {
    "controlnet": "ControlNet does not run on the OpenVINO backend yet: use --backend torch",
    "deepcache": "DeepCache does not run on the OpenVINO backend yet (its shallow branch is not converted): "
                 "use --backend torch",
    "token_merging": "token merging does not run on the OpenVINO backend (ToMe patches the torch attention): "
                     "use --backend torch",
}


def require_openvino():
    try:
        import openvino
    except ImportError:
        raise Sd1kitError("openvino", "not installed: pip install 'sd1kit[openvino]' (or use --backend torch)") \
            from None
    return openvino


def available() -> bool:
    try:
        require_openvino()
    except Sd1kitError:
        return False
    return True


def pick_precision() -> str:
    """bf16 where the CPU has bf16 dot products (AVX512-BF16 or AMX), f32 elsewhere (bf16 would be emulated)."""
    return "bf16" if cpu_has_bf16() else "f32"


def precision_of(dtype: str) -> str:
    """OpenVINO's inference precision for one of our --dtype names."""
    if dtype == "fp16":
        raise Sd1kitError("--backend openvino", "computes in bf16 or fp32 on the CPU, not fp16: --dtype bf16 or fp32")
    return {"bf16": "bf16", "fp32": "f32"}[dtype]


def cache_root() -> Path:
    base = os.environ.get("SD1KIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sd1kit")
    return Path(base) / "openvino"


def check_modifiers(modifiers) -> None:
    """Refuse, in one line, the first modifier the OpenVINO backend cannot run (modifier objects or kinds)."""
    for m in modifiers:
        kind = m if isinstance(m, str) else m.kind
        if kind in REFUSED:
            raise Sd1kitError("--backend openvino", REFUSED[kind])
        if kind == "lora" and getattr(m, "only", None):
            raise Sd1kitError("--backend openvino", "a hires prompt with its own LoRAs does not run on the OpenVINO "
                                                    "backend yet: use --backend torch")


# --- weights identity ---

def weights_hash(module: torch.nn.Module) -> tuple[str, bool]:
    """sha256 of a module's state (names, dtypes, shapes, bytes), and whether every float tensor is exactly
    representable in fp16 (then the IR stores fp16 weights, losslessly: most SD1 files are fp16)."""
    h = hashlib.sha256()
    fp16_exact = True
    with torch.no_grad():
        for name, t in sorted(module.state_dict().items()):
            t = t.detach().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
            if fp16_exact and t.is_floating_point() and t.dtype != torch.float16:
                fp16_exact = bool(torch.equal(t.to(torch.float16).to(t.dtype), t))
    return h.hexdigest(), fp16_exact


# --- the graphs converted: each part as one tensor function ---

def _float_out(t: torch.Tensor) -> torch.Tensor:
    return t.float()


class _UNetGraph(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.dtype = next(unet.parameters()).dtype

    def forward(self, sample, timestep, encoder_hidden_states):
        out = self.unet(sample.to(self.dtype), timestep, encoder_hidden_states=encoder_hidden_states.to(self.dtype),
                        return_dict=False)[0]
        return _float_out(out)


class _DecoderGraph(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.dtype = next(vae.parameters()).dtype

    def forward(self, z):
        return _float_out(self.vae.decode(z.to(self.dtype)).sample)


class _EncoderGraph(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.dtype = next(vae.parameters()).dtype

    def forward(self, x):
        return _float_out(self.vae.encode(x.to(self.dtype)).latent_dist.mean)


class _TextGraph(torch.nn.Module):
    """CLIP after the token embedding: position embeddings, the causal transformer, the final norm; returns the
    normed last state and every hidden state (for clip skip), as CLIPTextModel's hidden_states tuple has them."""

    def __init__(self, te):
        super().__init__()
        from sd1kit.models.build import clip_module_prefix

        prefix = clip_module_prefix(te)
        self.embeddings = te.get_submodule(prefix + "embeddings")
        self.layers = te.get_submodule(prefix + "encoder").layers
        self.norm = te.get_submodule(prefix + "final_layer_norm")
        self.dtype = next(te.parameters()).dtype

    def forward(self, token_embeds):
        n = token_embeds.shape[1]
        h = token_embeds.to(self.dtype) + self.embeddings.position_embedding(self.embeddings.position_ids[:, :n])
        mask = torch.full((n, n), torch.finfo(h.dtype).min, dtype=h.dtype).triu(1)[None, None]
        states = [h]
        for layer in self.layers:
            h = layer(h, mask)
            states.append(h)
        return (_float_out(self.norm(h)), *[_float_out(s) for s in states])


# --- conversion, the IR cache, compilation ---

@dataclasses.dataclass
class _Spec:
    part: str  # unet, vae_decoder, vae_encoder, text_encoder
    graph: torch.nn.Module
    example: tuple  # example inputs (float32)
    dynamic: list  # the partial shape of each input, -1 where dynamic
    config: dict  # the part's architecture (cache key)
    weights: torch.nn.Module  # whose weights the graph holds (hashed)


def _ir_key(spec: _Spec, weights: str, fp16: bool, int8: bool = False) -> str:
    """The cache key of a part's IR; `int8` (its NNCF-compressed IR) adds itself and NNCF's version, only when
    true, so that the plain IR's key is what it was."""
    import openvino as ov

    key = {"part": spec.part, "config": spec.config, "weights": weights, "fp16": fp16, "openvino": ov.__version__,
           "torch": torch.__version__.split("+")[0], "backend": BACKEND_VERSION}
    if int8:
        key.update(int8=True, nncf=_nncf_version())
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _nncf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nncf")
    except PackageNotFoundError:
        return "not installed"  # never compressed with: _compress refuses first


def _convert(spec: _Spec, xml: Path, fp16: bool) -> None:
    import openvino as ov

    label = spec.part.replace("_", " ")
    print(f"converting the {label} to OpenVINO (once per model and adapters; cached in {xml.parent}) ...",
          file=sys.stderr, flush=True)
    t = time.perf_counter()
    dtype = next(spec.weights.parameters()).dtype
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's TracerWarnings about diffusers' shape checks
        # traced in fp32 (a 16-bit file's weights are stored back in fp16, losslessly): the IR then computes in
        # the precision it is compiled for, not in the file's
        torch.nn.Module.float(spec.weights)  # torch's own: diffusers' .to() logs about fp32 modules
        spec.graph.dtype = torch.float32
        try:
            model = ov.convert_model(spec.graph, example_input=spec.example,
                                     input=[ov.PartialShape(s) for s in spec.dynamic])
        finally:
            torch.nn.Module.to(spec.weights, dtype)  # lossless: the values came from `dtype`
            spec.graph.dtype = dtype
    _save_ir(model, xml, fp16)
    del model
    STATS["conversions"] += 1
    print(f"converted the {label} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)


def _save_ir(model, xml: Path, fp16: bool) -> None:
    """Write an IR atomically: saved under a temporary name, then its .bin and its .xml moved into place (a
    reader finds the .xml only once the .bin it names is there)."""
    import openvino as ov

    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = xml.with_name(xml.stem + f".tmp{os.getpid()}.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=fp16)
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)


class OVPart:
    """One converted part: its IR read once, compiled for the CPU in `precision`; under the static policy one
    compiled model per input shape (the last STATIC_KEPT kept), under the dynamic one a single one."""

    def __init__(self, xml: Path, precision: str, policy: str, part: str = ""):
        import openvino as ov

        self.core = ov.Core()
        self.xml = xml  # read again for each compile: a kept ov.Model would hold the IR's weights resident
        self.precision, self.policy, self.part = precision, policy, part
        self.config = {"INFERENCE_PRECISION_HINT": precision}
        self._compiled: OrderedDict = OrderedDict()

    def compiled(self, shapes: tuple):
        key = shapes if self.policy == "static" else None
        c = self._compiled.get(key)
        if c is None:
            try:
                c = self._compile(key)
            except RuntimeError as e:
                if key is None:
                    raise
                # OpenVINO's CPU plugin refuses some static shapes it should take (seen: an int8-weight UNet
                # whose middle block is 1x1, at 64 px): the part is then compiled once with dynamic shapes
                print(f"OpenVINO could not compile the {self.part.replace('_', ' ') or 'model'} for the shapes "
                      f"{list(map(list, shapes))} ({str(e).strip().splitlines()[-1][:120]}); compiling it with "
                      "dynamic shapes instead", file=sys.stderr, flush=True)
                self.policy = "dynamic"
                STATS["fallbacks"] += 1
                return self.compiled(shapes)
            STATS["compiles"] += 1
            while len(self._compiled) >= STATIC_KEPT:
                self._compiled.popitem(last=False)
            self._compiled[key] = c
        else:
            self._compiled.move_to_end(key)
        return c

    def release(self, drop: bool = False) -> None:
        """Free what the compiled models hold between calls: their scratch memory (OpenVINO's release_memory:
        the activations kept for the next call), or with `drop` the compiled models themselves, weights and all
        (compiled again, from the cached IR, on the next call)."""
        if drop:
            self._compiled.clear()
            return
        for c in self._compiled.values():
            c.release_memory()

    def with_precision(self, precision: str) -> "OVPart":
        """The same IR, compiled in another precision (nothing is compiled until it is called)."""
        return OVPart(self.xml, precision, self.policy, self.part)

    def _compile(self, shapes: tuple | None):
        model = self.core.read_model(str(self.xml))
        if shapes is not None:
            model.reshape({i: list(s) for i, s in enumerate(shapes)})
        return self.core.compile_model(model, "CPU", self.config)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        arrays = [np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy()) for t in inputs]
        c = self.compiled(tuple(a.shape for a in arrays))
        out = c(arrays, share_inputs=True)
        return [torch.from_numpy(np.array(out[i])) for i in range(len(c.outputs))]


def _ir_paths(spec: _Spec) -> tuple[Path, Path, bool]:
    """The plain IR's path and its int8-compressed IR's (their names are the cache keys), and whether the plain
    one stores fp16 weights (losslessly)."""
    weights, fp16 = weights_hash(spec.weights)
    root = cache_root()
    return (root / f"{spec.part}-{_ir_key(spec, weights, fp16)}.xml",
            root / f"{spec.part}-{_ir_key(spec, weights, fp16, int8=True)}-int8.xml", fp16)


def ir_paths(modules, parts=None, int8: bool = False) -> dict[str, tuple[Path, bool]]:
    """Where each part's IR is (or would be) cached for these weights, and whether it is there: the cache key,
    without converting anything. int8: the compressed IR for the parts --int8 compresses (INT8_PARTS)."""
    require_openvino()
    out = {}
    for spec in _specs(modules, parts or ALL_PARTS, 64, 64):
        plain, small, _ = _ir_paths(spec)
        xml = small if int8 and spec.part in INT8_PARTS else plain
        out[spec.part] = (xml, _cached(xml))
    return out


def _cached(xml: Path) -> bool:
    return xml.is_file() and xml.with_suffix(".bin").is_file()


def _load_part(spec: _Spec, precision: str, policy: str, int8: bool = False) -> OVPart:
    require_openvino()
    xml, small, fp16 = _ir_paths(spec)
    if _cached(small if int8 else xml):
        STATS["cache_hits"] += 1
    else:
        if not _cached(xml):
            _convert(spec, xml, fp16)
        if int8:
            _compress(xml, small)
    return OVPart(small if int8 else xml, precision, policy, spec.part)


def _compress(xml: Path, out: Path) -> None:
    """The IR's weights compressed to int8 (NNCF's weight-only compression, asymmetric per output channel: its
    default), cached beside the plain IR; activations keep the compile precision."""
    try:
        import nncf
    except ImportError:
        raise Sd1kitError("--int8", "NNCF is not installed: pip install 'sd1kit[openvino]'") from None
    import openvino as ov

    print(f"compressing {xml.stem.split('-')[0].replace('_', ' ')} weights to int8 (once; cached) ...",
          file=sys.stderr, flush=True)
    model = nncf.compress_weights(ov.Core().read_model(str(xml)))
    _save_ir(model, out, fp16=False)
    del model
    STATS["compressions"] += 1


# --- modules with the torch modules' call signatures ---

class _OVModule(torch.nn.Module):
    """A stand-in torch module: one fp32 marker parameter so that device / compute-dtype queries
    (`next(m.parameters())`, pipeline.device.compute_dtype) answer "fp32 on the CPU": inputs are fed in fp32, and
    OpenVINO computes in the precision it was compiled for."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.marker = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def parts(self) -> list:
        return [self.part]

    def release_memory(self, drop: bool = False) -> None:
        """pipeline.memory.release: each part's scratch memory freed (`drop`: the compiled parts too)."""
        for part in self.parts():
            if part is not None:
                part.release(drop)


class OVUNet(_OVModule):
    """unet(sample, timestep, encoder_hidden_states=...) -> object with `.sample`, as diffusers' UNet."""

    backend = "openvino"

    def __init__(self, part: OVPart, config):
        super().__init__(config)
        self.part = part

    def forward(self, sample, timestep, encoder_hidden_states=None, return_dict=True, **kwargs):
        if kwargs.get("down_block_additional_residuals") is not None or \
                kwargs.get("mid_block_additional_residual") is not None:
            raise Sd1kitError("--backend openvino", REFUSED["controlnet"])
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        if t.shape[0] != sample.shape[0]:
            t = t.expand(sample.shape[0])
        out = self.part(sample, t, encoder_hidden_states)[0]
        return SimpleNamespace(sample=out) if return_dict else (out,)


class OVVAE(_OVModule):
    """vae.decode(z).sample and vae.encode(x).latent_dist.mean, as diffusers' AutoencoderKL (the posterior's mean
    only: the pipeline encodes deterministically)."""

    backend = "openvino"

    def __init__(self, decoder: OVPart | None, encoder: OVPart | None, config):
        super().__init__(config)
        self.decoder_part, self.encoder_part = decoder, encoder
        self._fp32 = None  # the decoder compiled in f32, made on the first overflow

    def parts(self) -> list:
        return [self.decoder_part, self.encoder_part, self._fp32]

    def reduced_precision(self) -> bool:
        return self.decoder_part is not None and self.decoder_part.precision != "f32"

    @contextlib.contextmanager
    def in_fp32(self):
        """The decoder compiled in f32 for the block (images.decode's retry after a 16-bit overflow); the f32
        part is kept for the next overflow."""
        held = self.decoder_part
        if self._fp32 is None:
            self._fp32 = held.with_precision("f32")
        self.decoder_part = self._fp32
        try:
            yield
        finally:
            self.decoder_part = held

    def decode(self, z, return_dict=True):
        out = self.decoder_part(z)[0]
        return SimpleNamespace(sample=out) if return_dict else (out,)

    def encode(self, x, return_dict=True):
        if self.encoder_part is None:
            raise Sd1kitError("--backend openvino", "the VAE encoder was not converted")
        mean = self.encoder_part(x)[0]
        dist = SimpleNamespace(mean=mean, mode=lambda: mean)
        return SimpleNamespace(latent_dist=dist) if return_dict else (dist,)


class OVTextEncoder(_OVModule):
    """text_encoder(input_ids=..., output_hidden_states=...) -> .last_hidden_state / .hidden_states, as
    CLIPTextModel. The token embedding stays the torch module (with its submodule name), so the hooks that put
    textual-inversion vectors in place of their tokens (prompts.encode) act on it; the final layer norm too, for
    clip skip."""

    backend = "openvino"

    def __init__(self, part: OVPart, te):
        super().__init__(te.config)
        from sd1kit.models.build import clip_module_prefix

        prefix = clip_module_prefix(te)
        holder = self
        if prefix:
            holder = torch.nn.Module()
            self.add_module(prefix.rstrip("."), holder)
        holder.embeddings = torch.nn.Module()
        holder.embeddings.token_embedding = te.get_submodule(prefix + "embeddings.token_embedding")
        holder.final_layer_norm = te.get_submodule(prefix + "final_layer_norm")
        self._prefix = prefix
        self.part = part
        del self.marker  # the token embedding's weight answers device and dtype

    def forward(self, input_ids, output_hidden_states=False, **kwargs):
        embedding = self.get_submodule(self._prefix + "embeddings.token_embedding")
        with torch.no_grad():
            embeds = embedding(input_ids).float()
        last, *states = self.part(embeds)
        return SimpleNamespace(last_hidden_state=last, hidden_states=tuple(states) if output_hidden_states else None,
                               pooler_output=None)


# --- whole models ---

def _specs(modules, parts, width: int, height: int) -> list[_Spec]:
    specs = []
    h, w = height // 8, width // 8
    if "unet" in parts:
        unet = modules.unet
        ctx = unet.config.cross_attention_dim
        c = unet.config.in_channels
        specs.append(_Spec("unet", _UNetGraph(unet).eval(),
                           (torch.randn(2, c, h, w), torch.tensor([500.0, 500.0]), torch.randn(2, 77, ctx)),
                           [[-1, c, -1, -1], [-1], [-1, -1, ctx]], _config(unet), unet))
    if "vae_decoder" in parts or "vae_encoder" in parts:
        vae = modules.vae
        lc = vae.config.latent_channels
        if "vae_decoder" in parts:
            specs.append(_Spec("vae_decoder", _DecoderGraph(vae).eval(), (torch.randn(1, lc, h, w),),
                               [[-1, lc, -1, -1]], _config(vae), vae))
        if "vae_encoder" in parts:
            specs.append(_Spec("vae_encoder", _EncoderGraph(vae).eval(), (torch.rand(1, 3, height, width) * 2 - 1,),
                               [[-1, 3, -1, -1]], _config(vae), vae))
    if "text_encoder" in parts:
        te = modules.text_encoder
        dim = te.config.hidden_size
        specs.append(_Spec("text_encoder", _TextGraph(te).eval(), (torch.randn(1, 77, dim),), [[-1, 77, dim]],
                           _config(te), te))
    return specs


def _config(module) -> dict:
    cfg = module.config
    d = dict(cfg) if isinstance(cfg, dict) else cfg.to_dict()
    return {"class": type(module).__name__, **{k: v for k, v in d.items() if not k.startswith("_")}}


ALL_PARTS = ("unet", "vae_decoder", "vae_encoder", "text_encoder")
INT8_PARTS = ("unet", "text_encoder")  # --int8: the VAE keeps its weights (small; its errors land on the pixels)


def openvino_modules(modules, parts=ALL_PARTS, precision: str | None = None, policy: str = DEFAULT_POLICY,
                     int8: bool = False):
    """SD1Modules with each part in `parts` converted (or read from the cache) and wrapped; the others stay torch.
    The torch modules are not changed; the text encoder's token embedding and final norm are shared."""
    require_openvino()
    if policy not in POLICIES:
        raise Sd1kitError("shape policy", f"must be one of {', '.join(POLICIES)}, not {policy!r}")
    precision = precision or pick_precision()
    loaded = {s.part: _load_part(s, precision, policy if s.part != "text_encoder" else "static",
                                 int8 and s.part in INT8_PARTS)
              for s in _specs(modules, parts, 64, 64)}
    out = {}
    if "unet" in loaded:
        out["unet"] = OVUNet(loaded["unet"], modules.unet.config)
    if "vae_decoder" in loaded or "vae_encoder" in loaded:
        out["vae"] = OVVAE(loaded.get("vae_decoder"), loaded.get("vae_encoder"), modules.vae.config)
    if "text_encoder" in loaded:
        out["text_encoder"] = OVTextEncoder(loaded["text_encoder"], modules.text_encoder)
    return dataclasses.replace(modules, **out)


def openvino_model(model, adapters=None, modifiers=(), **options):
    """A copy of a LoadedModel whose modules run on OpenVINO. `adapters` (an AdapterStack): LoRA / LyCORIS baked
    into the weights before conversion (the cached IR's key changes with them); `modifiers`: the plan's, refused
    in one line where the backend cannot run them."""
    check_modifiers(modifiers)
    if model.device.type != "cpu":
        raise Sd1kitError("--backend openvino", f"runs on the CPU, not {model.device}")
    if adapters is None:
        modules = openvino_modules(model.modules, **options)
    else:
        from sd1kit.adapters.live import adapters_applied

        with adapters_applied(model.modules, adapters):
            modules = openvino_modules(model.modules, **options)
    from sd1kit.adapters.live import live_shapes

    return dataclasses.replace(model, modules=modules, warnings=list(model.warnings),
                               adapter_shapes=live_shapes(model.modules))


_BAKED: dict = {}  # the last LoRA set baked, per model file: (key, modules)


def baked_modules(model, stack):
    """`model`'s modules (an OpenVINO model's) with the UNet and text encoder of its file's weights with `stack`
    baked in, converted (the IR cached on disk by the baked weights' hash; the last set kept in memory)."""
    key = (str(model.path), model.runtime.label if model.runtime else None,
           tuple((str(a.file.path), a.te, a.unet, a.dyn, tuple(sorted((a.blocks or {}).items())))
                 for a in stack.adapters))
    held = _BAKED.get("last")
    if held is None or held[0] != key:
        _BAKED.clear()
        from sd1kit.adapters.live import adapters_applied
        from sd1kit.pipeline.model import file_modules

        raw = file_modules(model)
        precision = precision_of(model.runtime.dtype) if model.runtime else None
        int8 = bool(model.runtime and model.runtime.int8)
        with adapters_applied(raw, stack):
            converted = openvino_modules(raw, ("unet", "text_encoder"), precision, int8=int8)
        _BAKED["last"] = (key, converted, copy.deepcopy(stack.reports))
        del raw
    _, converted, reports = _BAKED["last"]
    for mine, held in zip(stack.reports, reports):  # what applying them reported, for this plan's stack
        mine.applied, mine.unused, mine.mismatched = dict(held.applied), list(held.unused), list(held.mismatched)
    return dataclasses.replace(model.modules, unet=converted.unet, text_encoder=converted.text_encoder)


def is_openvino(module) -> bool:
    return getattr(module, "backend", None) == "openvino"
