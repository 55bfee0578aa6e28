"""`sd1kit get` and `sd1kit install`: a source or a catalog record's files fetched, verified and placed where
A1111 expects them; `get --from-dir` for files downloaded elsewhere."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sd1kit.catalog.schema import FileRecord, ModelRecord
from sd1kit.errors import Sd1kitError, os_error
from sd1kit.install.download import Downloader, Remote, check_present, remember_hashes
from sd1kit.install.place import FOLDERS, detect_kind, folder_for, models_root, write_yaml_beside
from sd1kit.install.remote import resolve
from sd1kit.install.sources import parse_source

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass
class Placed:
    path: Path
    sha256: str
    status: str  # downloaded, resumed, present, copied, yaml written, yaml present
    checked: str | None  # whose hash it matched
    record: str | None = None

    def line(self) -> str:
        if self.status.startswith("yaml"):
            return f"{self.status}: {self.path}"
        check = f"sha256 matches the {self.checked}'s" if self.checked else f"sha256 {self.sha256} (nothing to check it against)"
        return f"{self.status}: {self.path} ({check})"


# file names many unrelated files share (diffusers and trainer defaults): never evidence of which file it is
_GENERIC = re.compile(r"^(?:diffusion_pytorch_model|pytorch_model|model|models|weights?|checkpoint|last|final|"
                      r"unet|vae|text_encoder|pytorch_lora_weights|learned_embeds|adapter_model|lora|embedding)"
                      r"(?:[._-](?:fp16|fp32|bf16|ema|non_ema|noema|pruned|emaonly))*\.[A-Za-z0-9]+$", re.I)


def generic_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return bool(_GENERIC.match(base)) or Path(base).suffix.lower() in (".json", ".txt", ".yaml", ".yml", ".md")


def _same_file_name(candidate: str, catalog_name: str) -> bool:
    """Whether a source's file name (a repo path, a URL's or a Content-Disposition name) names a catalog file: its
    whole relative name, or that name ending a repo path; never a name many files share."""
    if generic_name(catalog_name):
        return False
    candidate = candidate.strip("/")
    return candidate == catalog_name or candidate.endswith("/" + catalog_name)


def _catalog_hit(source_text: str | None = None, names=(), sha256: str | None = None):
    """The catalog file a source is: by its source string, else by a specific file name, else by sha256."""
    from sd1kit.catalog.catalog import catalog, match_hash

    for record in catalog():
        for f in record.files:
            if source_text and f.source and f.source.strip() == source_text.strip():
                return record, f
    for candidate in [n for n in names if n]:
        for record in catalog():
            for f in record.files:
                if _same_file_name(candidate, f.name):
                    return record, f
    return match_hash(sha256=sha256) if sha256 else None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b\s*$", re.I)


def size_limit(text: str | None) -> int | None:
    """The most bytes a catalog size ("2.13 GB", "335 MB", "581 B") can mean: rounded figures, and GB read as
    GiB, plus 2%."""
    m = _SIZE.match(text or "")
    if not m:
        return None
    decimals = len(m[1].partition(".")[2])
    upper = float(m[1]) + 0.5 * 10 ** -decimals
    return int(upper * 1024 ** " kmgt".index(m[2].lower() or " ") * 1.02) + 4096


def _expected(remote: Remote, given: str | None, file: FileRecord | None) -> None:
    """The hash the download must have: --sha256, else the catalog's, else the source's (refused up front when the
    catalog and the source disagree: a different file than the one the catalog describes)."""
    if given:
        given = given.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", given):
            raise Sd1kitError("--sha256", f"{given!r} is not 64 hex digits")
        remote.sha256, remote.sha256_from = given, "--sha256"
    elif file is not None and file.sha256:
        if remote.sha256 and remote.sha256 != file.sha256:
            raise Sd1kitError(remote.label, f"the source says sha256 {remote.sha256}, the catalog {file.sha256} for "
                                            f"{file.name}: not the file the catalog describes; nothing was downloaded "
                                            "(give --sha256 to take it anyway)")
        remote.sha256, remote.sha256_from = file.sha256, "catalog"
    if file is not None and (limit := size_limit(file.size)) is not None:
        remote.limit = min(remote.limit or limit, limit)


def _with_suffix(name: str | None, like: str | None) -> str | None:
    if name and like and not Path(name).suffix and Path(like).suffix:
        return name + Path(like).suffix
    return name


def fetch_source(source_text: str, *, to: str | None = None, name: str | None = None, sha256: str | None = None,
                 models_dir=None, variant: str | None = None, downloader: Downloader | None = None,
                 known: tuple[ModelRecord, FileRecord] | None = None) -> list[Placed]:
    """One source fetched and placed (plus sd1kit's yaml beside a v-prediction checkpoint the catalog knows)."""
    downloader = downloader or Downloader()
    root = models_root(models_dir)
    source = parse_source(source_text)
    remote = resolve(source, downloader.client, variant)
    shown = remote.label or source_text
    names = (source.path if source.scheme == "hf" else None, remote.name,
             source.filename if source.scheme == "url" else None)
    hit = known or _catalog_hit(source_text, names, remote.sha256)
    record, file = hit if hit else (None, None)
    _expected(remote, sha256, file)
    # a catalog file keeps the catalog's name (a folder distribution its relative path) when installed from its
    # record, or when the source names none; otherwise the source's own name
    relative = file.name if file is not None and name is None and (known is not None or remote.name is None) else None
    name = _with_suffix(name, remote.name) or (relative.rsplit("/", 1)[-1] if relative else remote.name)
    kind = to or (record.kind if record is not None and record.kind in FOLDERS else None) or remote.kind

    def on_name(found: str) -> None:  # a name only the answer gives (Content-Disposition): a catalog file's?
        nonlocal record, file
        if record is None and (late := _catalog_hit(None, (found,), None)) is not None:
            record, file = late
            _expected(remote, sha256, file)

    if kind is not None:
        folder = folder_for(kind, root)
        if relative and "/" in relative:
            folder = folder / relative.rsplit("/", 1)[0]
        fetched = downloader.fetch(remote, folder, name, on_name=on_name)
    else:
        def choose(part: Path) -> Path:
            found = (record.kind if record is not None and record.kind in FOLDERS else None) or detect_kind(part)
            if found is None:
                raise Sd1kitError(shown, "cannot tell what kind of model file this is; give --to KIND")
            return folder_for(found, root)

        fetched = downloader.fetch(remote, root, name, choose_folder=choose, on_name=on_name)
    placed = [Placed(fetched.path, fetched.sha256, fetched.status, fetched.checked, record.id if record else None)]
    if record is not None and record.kind == "checkpoint" and record.yaml == "v-prediction" \
            and fetched.path.suffix.lower() in (".safetensors", ".ckpt"):
        path, state = write_yaml_beside(fetched.path, "v")
        placed.append(Placed(path, "", f"yaml {state}", None, record.id))
    return placed


def _group(f: FileRecord) -> str:
    return f.name.split("/", 1)[0]


def choose_files(record: ModelRecord, variant: str | None, prediction: str | None) -> list[FileRecord]:
    """The files of one record to fetch: the first distribution (a single file, or the files of one folder) that
    has sources, is of the asked precision, and suits the prediction type of the checkpoint it goes with."""
    sourced = [f for f in record.files if f.source]
    if not sourced:
        names = ", ".join(f.name for f in record.files) or "none listed"
        raise Sd1kitError(record.id, f"the catalog knows no download source for {record.name} (files: {names}); "
                                     "fetch it by hand, then sd1kit get --from-dir DIR")
    groups: dict[str, list[FileRecord]] = {}
    for f in sourced:
        groups.setdefault(_group(f), []).append(f)
    for files in groups.values():
        precisions = {(f.precision or "").split(",")[0].strip() for f in files if f.precision}
        if variant and variant not in precisions:
            continue
        if prediction and any(f.prediction not in (None, prediction) for f in files):
            continue
        return files
    raise Sd1kitError(record.id, f"no {' '.join(x for x in (variant, prediction and prediction + '-prediction') if x)} "
                                 f"file of {record.name} has a download source")


def install_plan(record: ModelRecord, variant: str | None = None) -> list[tuple[ModelRecord, list[FileRecord]]]:
    """Every file a record needs: a setup's components (checkpoint, then the LyCORIS applied to it) or the record's own."""
    from sd1kit.catalog.catalog import by_id

    if record.kind == "setup":
        table = by_id()
        parts = [table[e.id] for e in record.parents if e.relation in ("component", "lycoris-applied")]
        if not parts:
            raise Sd1kitError(record.id, "this setup names no component to install")
        plan = []
        for part in parts:
            wanted = record.prediction if part.kind in ("lycoris", "lora") else None
            plan.append((part, choose_files(part, variant if part.kind == "checkpoint" else None, wanted)))
        return plan
    if record.kind not in FOLDERS:
        raise Sd1kitError(record.id, f"a {record.kind} record has no files to install")
    return [(record, choose_files(record, variant, None))]


def install(record_id: str, variant: str | None = None, models_dir=None,
            downloader: Downloader | None = None) -> tuple[ModelRecord, list[Placed]]:
    from sd1kit.catalog.catalog import find

    record = find(record_id)
    downloader = downloader or Downloader()
    placed: list[Placed] = []
    for part, files in install_plan(record, variant):
        for f in files:
            placed += fetch_source(f.source, models_dir=models_dir, downloader=downloader, known=(part, f),
                                   to=part.kind if part.kind in FOLDERS else None)
    return record, placed


def settings_text(record: ModelRecord, placed: list[Placed]) -> str:
    """The record's recommended generation settings, and a `sd1kit generate` line using what was installed."""
    from sd1kit.catalog.render import facts

    s = record.settings
    lines = [f"recommended for {record.name}: {facts(record)}"]
    bits = [f"CFG {s.cfg}" if s.cfg else "", f"CFG rescale {s.cfg_rescale}" if s.cfg_rescale else "",
            f"clip skip {s.clip_skip}" if s.clip_skip and s.clip_skip > 1 else "", f"{s.steps} steps" if s.steps else "",
            f"sampler {' or '.join(s.samplers)}" if s.samplers else "",
            f"{s.resolution[0]}-{s.resolution[1]} px" if s.resolution else "", f"ENSD {s.ensd}" if s.ensd else ""]
    if any(bits):
        lines.append("  settings  " + "; ".join(b for b in bits if b))
    if record.prompt_style:
        lines.append(f"  prompts   {record.prompt_style}" + (f"; quality tags: {record.quality_tags}" if record.quality_tags else ""))
    if record.negative:
        lines.append(f"  negative  {record.negative}")
    files = [p for p in placed if not p.status.startswith("yaml")]
    folders = {"Stable-diffusion": [], "LyCORIS": [], "Lora": []}
    for p in files:
        if p.path.parent.name in folders:
            folders[p.path.parent.name].append(p.path)
    model = folders["Stable-diffusion"][0].stem if folders["Stable-diffusion"] else None
    tags = "".join(f" <lyco:{p.stem}:1>" for p in folders["LyCORIS"]) + "".join(f" <lora:{p.stem}:1>" for p in folders["Lora"])
    if model:
        args = [f'sd1kit generate "PROMPT{tags}" --model {model}']
        args += [f"--cfg {s.cfg}"] if s.cfg else []
        args += [f"--cfg-rescale {s.cfg_rescale}"] if s.cfg_rescale else []
        args += [f"--clip-skip {s.clip_skip}"] if s.clip_skip and s.clip_skip > 1 else []
        args += [f"--steps {s.steps}"] if s.steps else []
        args += [f'--sampler "{s.samplers[0]}"'] if s.samplers else []
        args += [f"--ensd {s.ensd}"] if s.ensd else []
        lines.append("  try       " + " ".join(args))
    return "\n".join(lines)


def _copy_verified(src: Path, dest: Path, expected: str) -> str:
    """Copy `src` to `dest` (the input is only read), hashing the bytes written; renamed only when they match."""
    from sd1kit.formats.atomic import atomic_path

    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        hasher = hashlib.sha256()
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while block := fin.read(8 << 20):
                    hasher.update(block)
                    fout.write(block)
        except OSError as e:
            raise os_error(e, src if getattr(e, "filename", None) == str(src) else dest) from None
        if hasher.hexdigest() != expected:
            raise Sd1kitError(src, f"changed while copying: sha256 {hasher.hexdigest()}, expected {expected}")
    return hasher.hexdigest()


def from_dir(folder, models_dir=None) -> tuple[list[Placed], list[str]]:
    """Files downloaded elsewhere: each hashed, matched against the catalog's sha256s, copied where it belongs.
    Returns what was placed and one line per file left where it is."""
    from sd1kit.catalog.catalog import match_hash
    from sd1kit.formats.hashes import file_hashes

    folder = Path(folder)
    if not folder.is_dir():
        raise Sd1kitError(folder, "no such folder")
    root = models_root(models_dir)
    placed, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES):
        sha = file_hashes(path).sha256
        hit = match_hash(sha256=sha)
        if hit is None:
            named = _catalog_hit(names=(path.name,))
            why = (f"named as {named[1].name} of {named[0].id} but its sha256 {sha} is not the catalog's "
                   f"{named[1].sha256}") if named and named[1].sha256 else f"sha256 {sha} is not in the catalog"
            skipped.append(f"{path}: {why}; not placed")
            continue
        record, f = hit
        kind = record.kind if record.kind in FOLDERS else detect_kind(path)
        if kind is None:
            skipped.append(f"{path}: the catalog's {record.id} is not a file sd1kit can place")
            continue
        dest = folder_for(kind, root) / f.name
        remote = Remote(url="", sha256=f.sha256, sha256_from="catalog")
        present = check_present(dest, remote)
        if present:
            placed.append(Placed(dest, sha, "present", "catalog", record.id))
        else:
            _copy_verified(path, dest, sha)
            remember_hashes(dest, sha)
            placed.append(Placed(dest, sha, "copied", "catalog", record.id))
        if record.kind == "checkpoint" and record.yaml == "v-prediction" and dest.suffix.lower() in (".safetensors", ".ckpt"):
            ypath, state = write_yaml_beside(dest, "v")
            placed.append(Placed(ypath, "", f"yaml {state}", None, record.id))
    return placed, skipped
