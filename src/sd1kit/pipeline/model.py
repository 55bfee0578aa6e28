"""A loaded SD1 checkpoint: runtime modules, its noise schedule and parameterisation, its identity (file name and
hashes, as infotexts name it). Loaded once per file identity and kept."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sd1kit.errors import Sd1kitError
from sd1kit.formats.hashes import file_identity
from sd1kit.models.build import SD1Modules, load_modules
from sd1kit.models.probe import cached_probe
from sd1kit.models.tokenizer import clip_tokenizer
from sd1kit.pipeline.device import DTYPES, compute_dtype, return_freed_memory, trim_heap
from sd1kit.pipeline.options import Resolved
from sd1kit.pipeline.runtime import Runtime
from sd1kit.report import inspect_path
from sd1kit.sampling.schedules import DiscreteSchedule, sd1_alphas_cumprod

BUILTIN_NAME = "sd1kit-demo"  # the default model: demo/__init__.py


@dataclass
class LoadedModel:
    name: str  # A1111's "Model": the file stem
    path: Path | None
    short_hash: str | None  # A1111's "Model hash"
    modules: SD1Modules
    prediction: str
    zero_terminal_snr: bool
    schedule: DiscreteSchedule
    device: torch.device
    dtype: torch.dtype
    warnings: list[str]
    # what the file itself says of its settings, each with its source (yaml, metadata, marker, catalog:ID, probe,
    # default): prediction, zero_terminal_snr, and where known clip_skip, cfg_rescale, size. The plan uses them
    # for settings the request leaves unset.
    defaults: dict = field(default_factory=dict)
    runtime: Runtime | None = None  # how it computes (device, precision, backend), each with its source
    adapter_shapes: dict | None = None  # the torch weights' LDM keys and shapes, where the modules are not torch's

    def weight_shapes(self) -> dict:
        """What a LoRA stack is matched against: the UNet's and text encoder's LDM keys and shapes."""
        from sd1kit.adapters.live import live_shapes

        return self.adapter_shapes if self.adapter_shapes is not None else live_shapes(self.modules)

    @property
    def tokenizer(self):
        return clip_tokenizer()

    @property
    def latent_scale(self) -> float:
        return self.modules.vae.config.scaling_factor


def native_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """The picture size a checkpoint was trained at, where its metadata says (SAI ModelSpec's
    `modelspec.resolution`, "512x512"): the default size of `generate`."""
    from sd1kit.formats.safetensors_io import read_header

    try:
        text = read_header(path).metadata.get("modelspec.resolution", "")
        w, h = (int(v) for v in text.lower().split("x"))
    except Exception:  # no file, not safetensors, no or odd metadata: no opinion
        return None
    return (w, h) if 64 <= w <= 4096 and 64 <= h <= 4096 else None


def _storage_dtype(compute: torch.dtype) -> torch.dtype:
    return compute if compute.itemsize <= 2 else torch.float16


def place_modules(modules: SD1Modules, device: torch.device, dtype: torch.dtype,
                  low_memory: bool = False) -> SD1Modules:
    for module in (modules.unet, modules.vae, modules.text_encoder):
        first = next(module.parameters(), None) if module is not None else None
        if first is None:
            continue
        storage = _storage_dtype(dtype) if low_memory else dtype
        if first.device != device or first.dtype != storage:
            # nn.Module.to, not diffusers' override, which warns about fp32-kept modules these models do not have
            torch.nn.Module.to(module, device=device, dtype=storage)
        if storage != dtype:
            _cast_per_layer(module, storage, dtype)
    if device.type == "cpu" and dtype == torch.bfloat16 and modules.unet is not None:
        # oneDNN's bf16 convolutions are faster in channels-last: 1.69x instead of 1.53x per step on an AVX512-BF16
        # CPU (bench/perf.py)
        modules.unet.to(memory_format=torch.channels_last)
    return modules


def _cast_per_layer(module: torch.nn.Module, storage: torch.dtype, compute: torch.dtype) -> None:
    """--low-memory: weights stay in 16 bits and each layer is cast to the compute precision only while it runs
    (diffusers' layerwise casting), so fp32 compute costs the memory of fp16 weights. Parameters outside the
    layers it hooks (a few embeddings) are kept in the compute precision."""
    from diffusers.hooks import apply_layerwise_casting

    apply_layerwise_casting(module, storage_dtype=storage, compute_dtype=compute, skip_modules_pattern=())
    for layer in module.modules():
        if not hasattr(layer, "_diffusers_hook"):  # norms: kilobytes
            for param in layer.parameters(recurse=False):
                param.data = param.data.to(compute)


def probe_modules(modules: SD1Modules):
    """The v-prediction probe (models/probe.py) on live modules, with the empty prompt's conditioning."""
    from sd1kit.models.probe import probe_prediction
    from sd1kit.prompts.encode import PromptEncoder

    return probe_prediction(modules, lambda: PromptEncoder(modules.text_encoder, clip_tokenizer()).encode(""),
                            compute_dtype(modules.unet))


def _ask_the_weights(modules: SD1Modules, ins, ztsnr: Resolved) -> tuple[Resolved, Resolved]:
    """Prediction type and zero terminal SNR from the probe (cached per file content); epsilon when it cannot tell.
    `ztsnr` is what the file says of zero terminal SNR (its source "default" when nothing does)."""
    verdict = cached_probe((ins.hashes or {}).get("sha256"), lambda: probe_modules(modules))
    if verdict.prediction == "unknown":
        return Resolved("epsilon", "default"), ztsnr
    assumed = ztsnr.source == "default" and verdict.zero_terminal_snr is None
    if ztsnr.source != "default":
        z = ztsnr
    elif assumed:  # the SD1 family's v-prediction models (FluffyRock's, EasyFluff) all use zero terminal SNR
        z = Resolved(verdict.prediction == "v", "probe (assumed for v)" if verdict.prediction == "v" else "default")
    else:
        z = Resolved(bool(verdict.zero_terminal_snr), "probe")
    note = None
    if verdict.prediction == "v":
        how = "with" if z.value else "without"
        why = " (as SD1 v models are; --no-ztsnr if not)" if assumed else ""
        note = (f"nothing in or beside the file says how it predicts; the v-prediction probe finds v "
                f"(confidence {verdict.confidence:.2f}): generating with it, {how} zero terminal SNR{why}")
        z = Resolved(z.value, z.source, note)
    return Resolved(verdict.prediction, "probe", note), z


def model_defaults(path, ins, modules: SD1Modules) -> dict[str, Resolved]:
    """What the file says of its own settings, in the order of trust: an override given to load_model, the yaml
    beside it, its metadata, marker keys, the catalog's record of its hash, the v-prediction probe, the default."""
    d = ins.detection
    record = _catalog_record(ins)
    tag = f"catalog:{record.id}" if record else None
    pred = Resolved(d.prediction, d.prediction_source)
    ztsnr = Resolved(d.zero_terminal_snr, d.zero_terminal_snr_source)
    if record is not None and record.prediction and pred.source == "default":
        pred = Resolved(record.prediction, tag)
    if record is not None and record.zero_terminal_snr is not None and ztsnr.source == "default":
        ztsnr = Resolved(bool(record.zero_terminal_snr), tag)
    if pred.source == "default":  # nothing in, beside or about the file says
        pred, ztsnr = _ask_the_weights(modules, ins, ztsnr)
    out = {"prediction": pred, "zero_terminal_snr": ztsnr}
    settings = record.settings if record is not None else None
    if settings is not None and settings.clip_skip:
        out["clip_skip"] = Resolved(settings.clip_skip, tag)
    if settings is not None and settings.cfg_rescale:
        out["cfg_rescale"] = Resolved(settings.cfg_rescale, tag)
    size = native_size(path)
    if size:
        out["size"] = Resolved(size, "metadata:modelspec.resolution")
    return out


def _catalog_record(ins):
    if ins.catalog is None:
        return None
    from sd1kit.catalog.catalog import by_id

    return by_id().get(ins.catalog["id"])


_CACHE: dict[tuple, LoadedModel] = {}


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, prediction: str | None = None,
               zero_terminal_snr: bool | None = None, low_memory: bool = False,
               runtime: Runtime | None = None) -> LoadedModel:
    """Load (or reuse) a checkpoint for generation (default: the built-in demo model). Refuses what is not a
    runnable SD1 checkpoint. `runtime` (pipeline.runtime.resolve_runtime: device, precision, backend,
    --low-memory) takes the place of device / dtype / low_memory, which are the library's plain torch path.
    low_memory: weights stored in 16 bits, each layer computed in `dtype` only while it runs."""
    if path is None:
        from sd1kit.demo import demo_model

        path = demo_model(BUILTIN_NAME)
    runtime = runtime or torch_runtime(device, dtype, low_memory)
    key = (file_identity(path), runtime.device, runtime.dtype, runtime.backend, prediction, zero_terminal_snr,
           runtime.low_memory, runtime.int8)
    if key in _CACHE:
        return _CACHE[key]
    if runtime.low_memory:
        return_freed_memory()
    ins = _inspected(path, prediction, zero_terminal_snr)
    raw = load_modules(ins.source.load_state_dict(), where=str(path))
    place = lambda m: place_modules(m, torch.device(runtime.device), runtime.torch_dtype,  # noqa: E731
                                    runtime.low_memory)
    if runtime.backend == "auto":
        from sd1kit.pipeline.backend_choice import choose

        file_dtype = next(raw.unet.parameters()).dtype
        runtime = runtime.with_backend(choose(raw, place, runtime.dtype))
        if runtime.backend == "openvino" and next(raw.unet.parameters()).dtype != file_dtype:
            raw = load_modules(ins.source.load_state_dict(), where=str(path))  # measuring placed them for torch
    modules = raw if runtime.backend == "openvino" else place(raw)
    name = Path(path).stem if Path(path).is_file() else Path(path).name
    defaults = model_defaults(path, ins, modules)
    if runtime.backend == "openvino":
        from sd1kit.pipeline.openvino_backend import openvino_modules, precision_of

        from sd1kit.adapters.live import live_shapes

        shapes = live_shapes(raw)
        modules = openvino_modules(raw, precision=precision_of(runtime.dtype), int8=runtime.int8)
        del raw
        trim_heap()
    pred, ztsnr = defaults["prediction"].value, defaults["zero_terminal_snr"].value
    schedule = DiscreteSchedule(sd1_alphas_cumprod(zero_terminal_snr=ztsnr))
    compute = torch.float32 if runtime.backend == "openvino" else runtime.torch_dtype
    return _remember(key, LoadedModel(name, Path(path), (ins.hashes or {}).get("a1111_short"), modules, pred, ztsnr,
                                      schedule, torch.device(runtime.device), compute, list(ins.warnings), defaults,
                                      runtime, shapes if runtime.backend == "openvino" else None))


def _inspected(path, prediction, zero_terminal_snr):
    """The file inspected, refused in one line unless it is a complete SD1 checkpoint."""
    ins = inspect_path(path, prediction=prediction, ztsnr=zero_terminal_snr)
    if ins.refusal:
        raise Sd1kitError(path, ins.refusal)
    d = ins.detection
    if d.kind != "checkpoint":
        raise Sd1kitError(path, f"a {d.kind} file, not a checkpoint to generate with")
    missing = [c for c in ("unet", "vae", "text_encoder") if not d.components[c]["present"]]
    if missing:
        raise Sd1kitError(path, f"checkpoint without {', '.join(missing)}: pass a complete checkpoint")
    return ins


def file_modules(model: LoadedModel) -> SD1Modules:
    """The torch modules of a loaded model's file, in the file's precision, built afresh (an OpenVINO model keeps
    none: a LoRA is baked into these and converted)."""
    ins = _inspected(model.path, None, None)
    return load_modules(ins.source.load_state_dict(), where=str(model.path))


def torch_runtime(device="cpu", dtype: torch.dtype = torch.float32, low_memory: bool = False) -> Runtime:
    """The library's plain path: torch, on the device and in the precision given."""
    name = next(k for k, v in DTYPES.items() if v == dtype)
    return Runtime(str(torch.device(device)), name, "torch", low_memory,
                   {"device": Resolved(str(torch.device(device)), "library"), "dtype": Resolved(name, "library"),
                    "backend": Resolved("torch", "library"), "low_memory": Resolved(low_memory, "library")})


def random_tiny_model(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                      prediction: str = "epsilon", zero_terminal_snr: bool = False) -> LoadedModel:
    """The tiny random-weight SD1 model of dev/tiny.py, unnamed and not cached: plumbing tests and ControlNets of
    its topology. It draws noise."""
    from sd1kit.dev.tiny import tiny_modules

    device = torch.device(device)
    defaults = {"prediction": Resolved(prediction, "model"), "zero_terminal_snr": Resolved(zero_terminal_snr, "model")}
    return LoadedModel("sd1kit-tiny", None, None, place_modules(tiny_modules(seed=0), device, dtype), prediction,
                       zero_terminal_snr, DiscreteSchedule(sd1_alphas_cumprod(zero_terminal_snr=zero_terminal_snr)),
                       device, dtype, [], defaults, torch_runtime(device, dtype))


def _remember(key: tuple, loaded: LoadedModel) -> LoadedModel:
    _CACHE.clear()  # one model resident at a time: SD1 checkpoints are 2-4 GB
    _CACHE[key] = loaded
    return loaded
