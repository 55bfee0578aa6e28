"""Acting on the catalog: the guide's "which checkpoint" advice, and scanning a models folder (a known file's
settings are applied by the generation plan, `pipeline.plan`, from `pipeline.model.model_defaults`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sd1kit.catalog.catalog import by_id

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass
class Advice:
    pick: list[str]  # catalog ids, best first
    family: str  # "sd1" or "sdxl"
    reasons: list[str]

    def text(self) -> str:
        table = by_id()
        lines = [f"recommendation: {' + '.join(table[p].name for p in self.pick) if self.pick else 'an SDXL-family checkpoint'}"]
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


def _gib(text: str | None) -> float | None:
    if text is None:
        return None
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = {"g": 1.0, "m": 1 / 1024, "t": 1024.0}.get(t[-1:], None)
    return float(t[:-1]) * scale if scale else float(t)


def recommend(ram: str | None = None, vram: str | None = None, use: str = "anime") -> Advice:
    """The guide's reasoning: SD1 only makes sense on hardware too weak for SDXL or for SD1-only tools (QR Code
    Monster); within SD1 its pick is EasyFluff + HLL."""
    ram_g, vram_g = _gib(ram), _gib(vram)
    if use == "qr-code":
        return Advice(["qr-monster-v2", "sd1.5"], "sd1", [
            "QR Code Monster v2 exists only for SD1.5: for QR art SD1 is the right family whatever the hardware.",
            "Use it with an SD1.5-family checkpoint (an anime one works too), the code on #808080 grey, "
            "high error correction."])
    strong = vram_g is not None and vram_g >= 8
    if strong:
        return Advice([], "sdxl", [
            f"{vram_g:g} GiB of VRAM runs SDXL-family checkpoints comfortably; by 2025 SD1 and its derivatives are "
            "outdated and the guide recommends SDXL (in some cases FLUX) instead.",
            "SD1 still makes sense for SD1-only tools such as ControlNet QR Code Monster (--for qr-code)."])
    why = []
    if vram_g is not None:
        why.append(f"{vram_g:g} GiB of VRAM is tight for SDXL (it wants about 8): SD1 is the practical choice.")
    elif ram_g is not None:
        why.append(f"CPU only with {ram_g:g} GiB RAM: an SD1 step costs a quarter of an SDXL step, and SDXL's "
                   "weights alone fill 7 GB in fp16.")
    else:
        why.append("without a GPU that runs SDXL comfortably, SD1 is the practical choice.")
    if ram_g is not None and ram_g < 8:
        why.append("with under 8 GiB RAM use fp16/bf16 weights and tiled VAE decoding (--dtype bf16 --tiled-vae).")
    if use == "furry":
        why.append("EasyFluff (FluffyRock lineage, e621 tags) is the furry specialist; HLL adds anime.")
    else:
        why.append("the guide's pick within SD1 is EasyFluff + the HLL LyCORIS: up to 1088 px, the best NSFW "
                   "understanding among SD1 checkpoints, danbooru and e621 tags, NAIv1 LoRAs work.")
    why.append("EasyFluff is v-prediction with zero terminal SNR: sd1kit knows it from its hash and applies "
               "v-prediction, ZTSNR and CFG rescale 0.7; other tools need its yaml beside the file.")
    why.append("alternatives: a Based68/69 or LS_Kerberos merge (HLL already baked in; LS_Kerberos is epsilon), "
               "or classic NAI v1 derivatives with clip skip 2.")
    return Advice(["easyfluff", "hll"], "sd1", why)


@dataclass
class ScanEntry:
    path: str
    kind: str
    family: str
    prediction: str | None
    prediction_source: str | None
    catalog: str | None
    short_hash: str | None
    yaml: str | None  # "present", "needed", "written", or None when none is needed
    problem: str | None = None
    # "known" (its sha256 is a catalog file's), "wrong file" (named as a catalog file, another sha256), "not installed"
    # (a catalog record with a download source and none of its files here: `path` is where `sd1kit install` puts it)
    state: str | None = None
    expected_sha256: str | None = None  # wrong file / not installed: the catalog's sha256, when known

    def as_json(self) -> dict:
        return dict(self.__dict__)


def _candidates(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_dir() and ((path / "unet").is_dir() or (path / "model_index.json").is_file()):
            yield path
        elif path.is_file() and path.suffix.lower() in MODEL_SUFFIXES and not any(
                p.is_dir() and ((p / "unet").is_dir() or (p / "model_index.json").is_file()) for p in path.parents):
            yield path


def scan(folder: str | os.PathLike, write_yaml: bool = False, missing: bool = False) -> list[ScanEntry]:
    """Every model file or diffusers folder under `folder`, as `scan_one` sees it; with `missing`, then the catalog
    records that could be installed and are not (`not_installed`)."""
    entries = [scan_one(path, write_yaml) for path in _candidates(Path(folder))]
    return entries + not_installed(folder, entries) if missing else entries


def _named_as(path: Path):
    """The catalog file (record, file) whose name this path carries (a folder distribution's part by its folders)."""
    from sd1kit.catalog.catalog import catalog

    posix = path.as_posix()
    for record in catalog():
        for f in record.files:
            if posix == f.name or posix.endswith("/" + f.name):
                return record, f
    return None


def not_installed(folder: str | os.PathLike, entries: list[ScanEntry] | None = None) -> list[ScanEntry]:
    """Catalog records with a download source none of whose files is under `folder` (by hash or by name): one row
    each, at the place `sd1kit install ID` would put its first file."""
    from sd1kit.catalog.catalog import catalog
    from sd1kit.install.place import FOLDERS, folder_for

    folder = Path(folder)
    entries = scan(folder) if entries is None else entries
    present = {e.catalog for e in entries if e.catalog}
    here = [Path(e.path) for e in entries]
    rows = []
    for record in catalog():
        sourced = [f for f in record.files if f.source]
        if not sourced or record.id in present or record.kind not in FOLDERS:
            continue
        if any(p.as_posix().endswith("/" + f.name) or ("/" in f.name and p.name == f.name.split("/", 1)[0])
               for p in here for f in record.files):
            continue
        first = sourced[0]
        where = folder_for(record.kind, folder) / first.name
        rows.append(ScanEntry(str(where), record.kind, "SD1", record.prediction if record.kind == "checkpoint" else None,
                              "catalog" if record.prediction else None, record.id,
                              first.short or (first.sha256[:10] if first.sha256 else None), None, None,
                              "not installed", first.sha256))
    return rows


def scan_one(path: Path, write_yaml: bool = False) -> ScanEntry:
    """What a file is (kind, family, prediction and its source, catalog match, hash) and whether a v-prediction
    checkpoint has the yaml A1111 needs beside it (written with `write_yaml`)."""
    from sd1kit.errors import Sd1kitError
    from sd1kit.formats.atomic import write_bytes_atomic
    from sd1kit.formats.yaml_config import sd1_yaml
    from sd1kit.models.families import VARIANTS
    from sd1kit.report import inspect_path

    try:
        ins = inspect_path(path)
    except Sd1kitError as e:
        return ScanEntry(str(path), "unreadable", "-", None, None, None, None, None, e.message)
    j = ins.as_json()
    cat = j.get("catalog")
    prediction, source = j["prediction"], j["prediction_source"]
    if cat and cat.get("prediction") == "v" and source == "default":
        prediction, source = "v", "catalog"
    yaml = None
    if j["kind"] == "checkpoint" and prediction == "v":
        beside = path.with_suffix(".yaml") if path.is_file() else None
        if beside is not None and beside.exists():
            yaml = "present"
        elif beside is not None and write_yaml:
            channels = next((v.unet_in_channels for v in VARIANTS if v.name == j["variant"]), 4)
            write_bytes_atomic(beside, sd1_yaml("v", channels).encode())
            yaml = "written"
        elif beside is not None:
            yaml = "needed"
    hashes = j["hashes"] if isinstance(j["hashes"], dict) else {}
    short = hashes.get("a1111_short")
    model = j["kind"] in ("checkpoint", "unet")
    state = expected = None
    problem = ins.refusal
    if cat:
        state = "known"
    elif hashes.get("sha256") and (named := _named_as(path)) is not None and named[1].sha256:
        state, expected = "wrong file", named[1].sha256
        why = (f"named as {named[1].name} of {named[0].name} but its sha256 {hashes['sha256']} is not the catalog's "
               f"{expected} (another version or precision, or a damaged download)")
        problem = f"{problem}; {why}" if problem else why
    return ScanEntry(str(path), j["kind"], j["family"], prediction if model else None, source if model else None,
                     cat["id"] if cat else None, short, yaml, problem, state, expected)
