"""Where and how a job computes: device, precision, backend and --low-memory. Declared once (`RUNTIME_OPTIONS`
gives `generate`, `qr`, `serve` and `batch` their flags) and resolved once per job (`resolve_runtime`), each choice
with its source as the plan records settings; `auto` is decided from what this machine has.

The default is the fastest exact path: bf16 on CPUs with bf16 dot products (AVX512-BF16 or AMX), fp16 on CUDA,
fp32 elsewhere, on the backend measured faster on this machine (`backend_choice`: OpenVINO or torch, measured once
per machine and model architecture, then cached). `--dtype fp32 --backend torch` stays the bit-reproducible path
across machines. The infotext says which path made a picture (`Precision`, and `Backend` when not torch), and
`--from` takes it back where this machine runs it well."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.device import DTYPES, auto_dtype, cpu_has_bf16, pick_device
from sd1kit.pipeline.options import Resolved

BACKEND_TEXT = {"torch": "torch", "openvino": "OpenVINO"}  # the infotext's `Backend` values


@dataclass(frozen=True)
class RuntimeOption:
    name: str
    flag: str
    default: object
    choices: tuple | None
    help: str


RUNTIME_OPTIONS = (
    RuntimeOption("device", "--device", "auto", None, "cpu, cuda, cuda:N, or auto (CUDA where present)"),
    RuntimeOption("dtype", "--dtype", "auto", ("auto", "fp32", "bf16", "fp16"),
                  "compute precision; auto (default): bf16 on CPUs with bf16 dot products, fp16 on CUDA, else fp32; "
                  "fp32: the same pixels on every machine"),
    RuntimeOption("backend", "--backend", "auto", ("auto", "torch", "openvino"),
                  "auto (default): OpenVINO where it measured faster on this machine (once, cached), else torch; "
                  "openvino needs pip install 'sd1kit[openvino]'"),
    RuntimeOption("low_memory", "--low-memory", False, None,
                  "the smallest peak, the same pixels: torch keeps weights in 16 bits and computes each layer in "
                  "--dtype only while it runs; OpenVINO frees each compiled part once its phase of a picture is "
                  "done (compiled again from the cache next picture: a few seconds)"),
    RuntimeOption("int8", "--int8", False, None,
                  "fast mode on OpenVINO: UNet and text encoder weights compressed to int8 (NNCF; pixels change "
                  "slightly; needs --backend openvino)"),
)


def add_runtime_flags(parser) -> None:
    """The runtime flags, each defaulting to None (= not given: `auto`)."""
    for o in RUNTIME_OPTIONS:
        if o.default is False:
            parser.add_argument(o.flag, dest=o.name, action="store_true", default=None, help=o.help)
        else:
            parser.add_argument(o.flag, dest=o.name, choices=o.choices, default=None, help=o.help)


@dataclass(frozen=True)
class Runtime:
    device: str
    dtype: str  # fp32 / bf16 / fp16
    backend: str  # torch / openvino; "auto" until the model is loaded (backend_choice decides)
    low_memory: bool = False
    sources: dict = field(default_factory=dict)  # name -> Resolved
    notes: tuple[str, ...] = ()  # said to the user (a picture's path this machine does not run well, ...)
    int8: bool = False  # OpenVINO: int8-compressed weights (fast mode, not exact)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def label(self) -> str:
        return (f"{self.backend} {self.dtype}" + (" int8 weights" if self.int8 else "")
                + (", low memory" if self.low_memory else ""))

    def with_backend(self, chosen: Resolved) -> Runtime:
        return replace(self, backend=chosen.value, sources={**self.sources, "backend": chosen})

    def params(self) -> dict:
        """The infotext's fields: `Precision` always, `Backend` when not torch."""
        out = {"Precision": self.dtype + (" int8 weights" if self.int8 else "")}
        if self.backend != "torch":
            out["Backend"] = BACKEND_TEXT[self.backend]
        return out

    def as_json(self) -> dict:
        return {"label": self.label, **{k: v.as_json() for k, v in self.sources.items()}}


def resolve_runtime(device=None, dtype=None, backend=None, low_memory=None, source: str = "cli",
                    picture: dict | None = None, request=None, int8=None) -> Runtime:
    """The runtime asked for (None: not given), a picture's recorded path (`--from`) where nothing was given and
    this machine runs it well, `auto` for the rest; `request`: the job, whose modifiers OpenVINO may not run (then
    `auto` is torch)."""
    notes: list[str] = []
    picked_device = pick_device(device or "auto")
    sources = {"device": Resolved(picked_device, source if device and device != "auto" else "auto")}
    sources["dtype"] = _dtype(dtype, picked_device, source, picture or {}, notes)
    low = bool(low_memory)
    sources["backend"] = _backend(backend, picked_device, source, picture or {}, notes, sources["dtype"].value)
    torch_only = torch_only_reason(request) if request is not None else None
    if torch_only and sources["backend"].value in ("auto", "openvino") and sources["backend"].source != source:
        sources["backend"] = Resolved("torch", f"auto: {torch_only} runs on torch")
    sources["low_memory"] = Resolved(low, source if low_memory is not None else "default")
    if int8 is None and str((picture or {}).get("Precision", "")).endswith(" int8 weights"):
        int8, source = True, "picture"
    if int8:
        if sources["backend"].value != "openvino":
            raise Sd1kitError("--int8", "compresses OpenVINO's weights: give it with --backend openvino")
        sources["int8"] = Resolved(True, source)
    return Runtime(picked_device, sources["dtype"].value, sources["backend"].value, low, sources, tuple(notes),
                   bool(int8))


def _dtype(dtype, device: str, source: str, picture: dict, notes: list[str]) -> Resolved:
    if dtype and dtype != "auto":
        if dtype not in DTYPES:
            raise Sd1kitError("--dtype", f"must be one of auto, {', '.join(DTYPES)}, not {dtype!r}")
        return Resolved(dtype, source)
    auto = Resolved(*auto_dtype(device))
    recorded = str(picture.get("Precision", "")).removesuffix(" int8 weights").strip()
    if dtype is None and recorded in DTYPES:
        if recorded in (auto.value, "fp32"):
            return Resolved(recorded, "picture")
        notes.append(f"the picture was made in {recorded}, which this machine does not compute well: "
                     f"{auto.value} ({auto.source}); pixels may differ slightly (give --dtype {recorded} to insist)")
    return auto


def _backend(backend, device: str, source: str, picture: dict, notes: list[str], dtype: str) -> Resolved:
    from sd1kit.pipeline.openvino_backend import available

    if backend and backend != "auto":
        if backend not in BACKEND_TEXT:
            raise Sd1kitError("--backend", f"must be one of auto, torch, openvino, not {backend!r}")
        if backend == "openvino" and not device.startswith("cpu"):
            raise Sd1kitError("--backend openvino", f"runs on the CPU, not {device}")
        if backend == "openvino" and not available():
            raise Sd1kitError("--backend openvino", "OpenVINO is not installed: pip install 'sd1kit[openvino]'")
        if backend == "openvino" and dtype == "fp16":
            raise Sd1kitError("--backend openvino", "computes in bf16 or fp32 on the CPU, not fp16")
        return Resolved(backend, source)
    recorded = str(picture.get("Backend", "")).strip()
    if backend is None and recorded == BACKEND_TEXT["openvino"]:
        if device.startswith("cpu") and available() and dtype != "fp16":
            return Resolved("openvino", "picture")
        notes.append("the picture was made on OpenVINO, not available here: torch (pixels within the bf16 "
                     "tolerance)")
    if not device.startswith("cpu"):
        return Resolved("torch", "auto: OpenVINO runs on the CPU")
    if dtype == "fp16":
        return Resolved("torch", "auto: OpenVINO computes in bf16 or fp32 on the CPU")
    if not available():
        return Resolved("torch", "auto: OpenVINO is not installed")
    return Resolved("auto", "auto")  # decided when the model is loaded: backend_choice


def torch_only_reason(request) -> str | None:
    """What in a request only the torch backend runs (ControlNet, DeepCache, token merging, hypernetworks), or
    None."""
    if getattr(request, "controlnets", None):
        return "ControlNet"
    if any("<hypernet:" in (getattr(request, f, None) or "") for f in ("prompt", "hr_prompt")):
        return "a hypernetwork"
    if (getattr(request, "deepcache", 0) or 0) > 1:
        return "DeepCache"
    if getattr(request, "token_merging", 0):
        return "token merging"
    return None


def given_runtime(source) -> dict:
    """resolve_runtime's choices as `source` gives them (parsed flags, a ServerConfig: an attribute per
    RUNTIME_OPTIONS row), None where not given; what a batch worker or a replica resolves for each job."""
    return {o.name: getattr(source, o.name, None) or None for o in RUNTIME_OPTIONS}


def runtime_from_args(args, picture: dict | None = None, source: str = "cli", request=None) -> Runtime:
    return resolve_runtime(**given_runtime(args), source=source, picture=picture, request=request)


def slow_precision_note(runtime: Runtime) -> str | None:
    """A 16-bit precision asked for on a CPU without 16-bit dot products (emulated: many times slower)."""
    if runtime.device.startswith("cpu") and runtime.dtype != "fp32" and not cpu_has_bf16():
        return (f"this CPU has no bf16/fp16 dot products: {runtime.dtype} runs many times slower than fp32 here "
                "(bench/perf.py); --low-memory gives 16-bit weights with fp32 compute")
    return None
