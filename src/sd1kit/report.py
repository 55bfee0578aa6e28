"""`sd1kit inspect`: the truth about a model file, as a JSON object and as a readable block with advice."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sd1kit.formats.hashes import file_hashes
from sd1kit.formats.source import ModelSource, open_source
from sd1kit.models.detect import Detection, detect

FAMILY_NAMES = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "sd3": "SD3", "flux": "FLUX"}
TRAINING_LABELS = {"ss_sd_model_name": "trained on", "ss_network_module": "network", "ss_network_dim": "dim",
                   "ss_network_alpha": "alpha", "ss_base_model_version": "base", "ss_output_name": "name",
                   "ss_network_args": "args", "ss_v2": "v2"}
V_PRED_NAME_HINT = re.compile(r"v[-_]?pred|zsnr|terminal[-_]?snr|easyfluff|fluffyrock", re.IGNORECASE)


@dataclass
class Inspection:
    source: ModelSource
    detection: Detection
    hashes: dict | None
    warnings: list[str]
    refusal: str | None  # why sd1kit will not run or load this file, if it will not
    adapter: dict | None = None  # for LoRA / LyCORIS files: `sd1kit.adapters.file.summarize`
    catalog: dict | None = None  # the catalog's record of this exact file, matched by hash
    hypernetwork: dict | None = None  # for hypernetworks: `sd1kit.adapters.hypernetwork.Hypernetwork.describe`

    def as_json(self) -> dict:
        d, s = self.detection, self.source
        return {
            "path": str(s.path), "kind": d.kind, "family": d.family, "variant": d.variant,
            "prediction": d.prediction, "prediction_source": d.prediction_source,
            "zero_terminal_snr": d.zero_terminal_snr, "zero_terminal_snr_source": d.zero_terminal_snr_source,
            "container": s.container, "dtypes": d.dtypes, "has_ema": d.has_ema, "ema_params": d.ema_params,
            "components": d.components, "safe": s.safe, "unsafe_globals": list(s.unsafe_globals),
            "hashes": self.hashes, "metadata": s.metadata,
            "adapter_algorithms": d.adapter_algorithms, "adapter": self.adapter, "catalog": self.catalog,
            "hypernetwork": self.hypernetwork,
            "tensors": len(s.tensors),
            "yaml": str(d.yaml.path) if d.yaml else None,
            "config": {
                "unet": d.unet_config.as_dict() if d.unet_config else None,
                "vae": d.vae_config.as_dict() if d.vae_config else None,
                "text_encoder": d.text_encoder_config.as_dict() if d.text_encoder_config else None,
            },
            "quirks": s.quirks, "training_state": s.training_state,
            "warnings": self.warnings, "refusal": self.refusal,
        }


def _hashes(source: ModelSource, kind: str, use_cache: bool) -> dict | None:
    adapter = kind in ("lora", "lycoris")
    if source.path.is_file():
        return file_hashes(source.path, addnet=adapter, use_cache=use_cache).as_dict()
    return {"files": {str(f.relative_to(source.path)): file_hashes(f, use_cache=use_cache).as_dict()
                      for f in source.files}}


def _warnings(source: ModelSource, d: Detection) -> list[str]:
    w = []
    name = source.path.name
    yaml_name = source.path.with_suffix(".yaml").name
    if d.kind == "checkpoint" and d.prediction == "epsilon" and d.prediction_source == "default" \
            and V_PRED_NAME_HINT.search(name):
        w.append(f"the name suggests a v-prediction model, but nothing in or beside the file says so: images will be "
                 f"noise if it is; place {yaml_name} beside it or pass --prediction v")
    if d.kind == "checkpoint" and d.prediction == "v" and d.prediction_source in ("marker", "metadata") \
            and not source.path.is_dir():
        w.append(f"v-prediction is known from the file's {d.prediction_source}, but no {yaml_name} is beside it: "
                 f"A1111 and ComfyUI will run it as epsilon and draw noise (sd1kit uses v)")
    if d.zero_terminal_snr and d.prediction == "epsilon":
        w.append("zero terminal SNR is set on an epsilon model: it only works with v-prediction")
    if d.kind == "checkpoint" and d.family == "sd1":
        for component in ("vae", "text_encoder"):
            if not d.components[component]["present"]:
                w.append(f"no {component.replace('_', ' ')} in this file: one from a known-good SD1 model will be needed "
                         f"(e.g. the SD1.4 {'VAE' if component == 'vae' else 'CLIP ViT-L/14'})")
    if d.yaml and d.yaml.use_ema and not d.has_ema:
        w.append(f"{d.yaml.path.name} asks for EMA weights (use_ema: true) but the file has no EMA copy")
    w += d.problems
    return w


def _refusal(source: ModelSource, d: Detection) -> str | None:
    if not source.safe:
        return ("unsafe pickle: references " + ", ".join(source.unsafe_globals)
                + "; nothing was executed, do not load it in tools that execute pickles")
    if d.family not in ("sd1", "unknown"):
        return f"this is {FAMILY_NAMES.get(d.family, d.family)}, not SD1: sd1kit runs SD1-family models only"
    if d.kind == "unknown":
        return "not a recognised SD1-family model file"
    return None


def inspect_path(path: str | Path, prediction: str | None = None, ztsnr: bool | None = None,
                 hashes: bool = True, use_cache: bool = True) -> Inspection:
    source = open_source(path)
    d = detect(source, prediction=prediction, ztsnr=ztsnr)
    adapter = None
    if d.kind in ("lora", "lycoris") and source.safe:
        from sd1kit.adapters.file import summarize

        adapter = summarize(source)
    file_hashes_ = _hashes(source, d.kind, use_cache) if hashes else None
    warnings = _warnings(source, d)
    hypernetwork = None
    if d.kind == "hypernetwork" and source.safe:
        from sd1kit.adapters.hypernetwork import load_hypernetwork
        from sd1kit.errors import Sd1kitError

        try:
            hypernetwork = load_hypernetwork(source.path).describe()
        except Sd1kitError as e:
            warnings.append(f"not loadable as a hypernetwork: {e.message}")
    known = _catalog_match(file_hashes_)
    if known and known["prediction"] == "v" and d.prediction == "epsilon" and d.prediction_source == "default":
        warnings.append(f"the catalog knows this file as {known['name']}, a v-prediction model: sd1kit generates "
                        f"with v; other tools need {source.path.with_suffix('.yaml').name} beside it "
                        "(sd1kit models scan --write-yaml)")
    return Inspection(source, d, file_hashes_, warnings, _refusal(source, d), adapter, known, hypernetwork)


def _catalog_match(hashes: dict | None) -> dict | None:
    if not hashes or "sha256" not in hashes:
        return None
    from sd1kit.catalog.catalog import match_hash

    hit = match_hash(sha256=hashes["sha256"], legacy=hashes.get("a1111_legacy"))
    if hit is None:
        return None
    record, file = hit
    return {"id": record.id, "name": record.name, "file": file.name, "prediction": record.prediction,
            "zero_terminal_snr": record.zero_terminal_snr}


def _format_params(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e5 else str(n)


def _provenance(metadata: dict) -> list[str]:
    """How an sd1kit merge or bake made this file, from its metadata."""
    from sd1kit.metadata.limits import load_json

    lines = []
    try:
        if "sd1kit_recipe" in metadata:
            record = load_json(metadata["sd1kit_recipe"], "sd1kit_recipe")
            for name, info in record["models"].items():
                lines.append(f"  merged from {name} = {info['file']} (sha256 {info['sha256'][:12]})")
            for name, node in record["nodes"].items():
                params = ", ".join(f"{k} {v}" for k, v in node.items() if k not in ("method", "models", "blocks"))
                blocks = " with block weights" if "blocks" in node else ""
                lines.append(f"  node        {name} = {node['method']}({', '.join(node['models'])}"
                             f"{'; ' + params if params else ''}){blocks}")
            lines.append(f"  output      {record['output']}  (redo: sd1kit merge --recipe-from FILE --out NEW)")
        if "sd1kit_baked" in metadata:
            record = load_json(metadata["sd1kit_baked"], "sd1kit_baked")
            adapters = ", ".join(f"{a['file']} x{a['weight']}" for a in record["adapters"])
            lines.append(f"  baked       {adapters} into {record['base']['file']} (sha256 {record['base']['sha256'][:12]})")
    except (ValueError, KeyError, TypeError, AttributeError):
        lines.append("  provenance  unreadable sd1kit merge record")
    return lines


def _hypernetwork_lines(h: dict) -> list[str]:
    structure = ", ".join(f"{x:g}" for x in h["layer_structure"])
    extras = [x for x, on in (("layer norm", h["layer_norm"]), ("activated output", h["activate_output"] and h["activation_func"] != "linear")) if on]
    dropout = [f"{x:g}" for x in h["dropout_structure"]]
    lines = [f"  structure   [{structure}], activation {h['activation_func']}"
             + "".join(f", {x}" for x in extras) + (f", dropout [{', '.join(dropout)}]" if any(
                 h["dropout_structure"]) else ""),
             f"  widths      {', '.join(map(str, h['widths']))} ({_format_params(h['parameters'])} parameters, keys and "
             "values)"]
    if h["step"] is not None or h["sd_checkpoint_name"]:
        lines.append(f"  trained     {h['step'] if h['step'] is not None else '?'} steps"
                     + (f" on {h['sd_checkpoint_name']}" if h["sd_checkpoint_name"] else ""))
    return [f"  name        {h['name']}", *lines]


def format_human(ins: Inspection) -> str:
    j = ins.as_json()
    lines = [f"{j['path']}"]
    kind = j["kind"] + (f" ({j['variant']})" if j["variant"] else "")
    lines.append(f"  kind        {kind}, family {j['family']}, container {j['container']}")
    if j["kind"] in ("checkpoint", "unet"):
        lines.append(f"  prediction  {j['prediction']} (from {j['prediction_source']})"
                     f"{', zero terminal SNR' if j['zero_terminal_snr'] else ''}")
        parts = [f"{name} {_format_params(c['params'])} {c['dtype']}" if c["present"] else f"{name} missing"
                 for name, c in j["components"].items()]
        lines.append(f"  components  {'; '.join(parts)}")
        lines.append(f"  EMA         {'yes (' + _format_params(j['ema_params']) + ')' if j['has_ema'] else 'no'}")
    a = j["adapter"]
    if a:
        per = ", ".join(f"{n} {name}" for name, n in sorted(a["algorithms"].items()))
        lines.append(f"  modules     {a['modules']} ({per}; " + ", ".join(f"{n} {p}" for p, n in a["parts"].items()) + ")")
        lines.append(f"  ranks       {', '.join(f'{r} x{n}' for r, n in a['ranks'].items()) or '-'}"
                     f"; alpha {', '.join(f'{r} x{n}' for r, n in a['alphas'].items()) or '-'}")
        for key, value in a["training"].items():
            lines.append(f"  {TRAINING_LABELS.get(key, key):<11} {value}")
        if a["top_tags"]:
            lines.append(f"  top tags    {', '.join(a['top_tags'])}")
        if a["bundled_embeddings"]:
            lines.append(f"  embeddings  {', '.join(a['bundled_embeddings'])} (bundled)")
    elif j["hypernetwork"]:
        lines += _hypernetwork_lines(j["hypernetwork"])
    elif j["adapter_algorithms"]:
        lines.append(f"  algorithms  {', '.join(j['adapter_algorithms'])}")
    lines.append(f"  dtypes      {', '.join(f'{k} x{v}' for k, v in j['dtypes'].items()) or '-'}")
    h = j["hashes"] or {}
    if "sha256" in h:
        lines.append(f"  hashes      sha256 {h['sha256']}")
        lines.append(f"              model hash {h['a1111_short']} (legacy {h['a1111_legacy']})")
        if "addnet" in h:
            lines.append(f"              lora hash {h['addnet_short']} (addnet {h['addnet']})")
    if j["catalog"]:
        c = j["catalog"]
        lines.append(f"  catalog     {c['name']} [{c['id']}] as {c['file']} (sd1kit models show {c['id']})")
    lines += _provenance(j["metadata"])
    for q in j["quirks"]:
        lines.append(f"  quirk       {q}")
    if not j["safe"]:
        lines.append(f"  UNSAFE      {', '.join(j['unsafe_globals'])}")
    for w in j["warnings"]:
        lines.append(f"  warning     {w}")
    if j["refusal"]:
        lines.append(f"  refused     {j['refusal']}")
    return "\n".join(lines)
