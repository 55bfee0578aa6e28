"""The jobs of a batch, from any of its sources, each a GenerationRequest with a deterministic id and output name.

- a text file in A1111's "Prompts from file or textbox" syntax: one prompt per line, or a line of `--tag value`
  options, read as that script reads it (shlex words; `--prompt` / `--negative_prompt` take the words up to the next
  `--`; a line it cannot parse is the prompt, whole, as A1111 makes it);
- a JSONL file: one A1111 txt2img payload per line (the option table's API fields);
- a folder of pictures: each one's parameters (`--from` semantics), the command line's flags over them;
- an X/Y/Z grid: `--xy "Sampler=Euler a,DPM++ 2M Karras" --xy "CFG scale=5,7,9"`, each axis an infotext key and
  its values (read by the option table as a picture's), every combination one job.

The command line's flags are the base of text and JSONL jobs (a line's own values win, as the script's do over
A1111's UI) and override a picture's values. A seed of -1 becomes a seed fixed by the job's content and place, so
that a rerun finds the same jobs done.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shlex
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.request import GenerationRequest


@dataclasses.dataclass(frozen=True)
class Job:
    index: int
    label: str  # where it came from: "prompts.txt line 3", a picture's file name, a grid cell
    request: GenerationRequest | None  # None: the job could not be read (`error`)
    error: str | None = None
    model_sha256: str | None = None  # the checkpoint's, so that a worker elsewhere finds its own copy
    cell: tuple | None = None  # (x, y, z) indexes of an X/Y/Z grid job
    note: str | None = None  # said when the batch starts (a line read as A1111 reads it, not as it looks)

    @functools.cached_property
    def id(self) -> str:
        """sha256 of what decides the pictures: the request (seed resolved) and the model's hash."""
        if self.request is None:
            return hashlib.sha256(f"unreadable {self.label}".encode()).hexdigest()
        return hashlib.sha256((canonical(self.request) + str(self.model_sha256)).encode()).hexdigest()

    def output_names(self) -> list[str]:
        """One file name per picture of the job: its id's first 12 digits, the seed, the picture's number."""
        r = self.request
        count = (r.batch_size * r.batch_count) if r is not None else 1
        seed = r.seed if r is not None else 0
        return [f"{self.id[:12]}-{seed}" + (f"-{k}" if count > 1 else "") + ".png" for k in range(count)]


def canonical(request: GenerationRequest) -> str:
    """The request as sorted JSON, without where its fields came from (not part of the picture)."""
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.name != "sources"}
    return json.dumps(fields, sort_keys=True, default=_plain)


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)


def fixed_seeds(request: GenerationRequest, place: str) -> GenerationRequest:
    """-1 seeds fixed by the request and its place in the batch (two equal lines get two seeds, a rerun the same)."""
    digest = hashlib.sha256((canonical(request) + place).encode()).digest()
    changes = {}
    if request.seed == -1:
        changes["seed"] = int.from_bytes(digest[:4], "big") % 4294967294
    if request.subseed == -1 and request.subseed_strength > 0:
        changes["subseed"] = int.from_bytes(digest[4:8], "big") % 4294967294
    return request.with_(**changes) if changes else request


# --- A1111's "Prompts from file or textbox" -------------------------------------------------------------------

def _bool_tag(text: str) -> bool:
    return text == "true"  # as the script reads it: anything else is false


PROMPT_TAGS = {  # the script's tags and how it reads each value; sd_model names a checkpoint
    "sd_model": str, "outpath_samples": str, "outpath_grids": str, "prompt_for_display": str, "prompt": str,
    "negative_prompt": str, "styles": str, "seed": int, "subseed_strength": float, "subseed": int,
    "seed_resize_from_h": int, "seed_resize_from_w": int, "sampler_index": int, "sampler_name": str,
    "batch_size": int, "n_iter": int, "steps": int, "cfg_scale": float, "width": int, "height": int,
    "restore_faces": _bool_tag, "tiling": _bool_tag, "do_not_save_samples": _bool_tag, "do_not_save_grid": _bool_tag,
}
IGNORED_TAGS = ("outpath_samples", "outpath_grids", "prompt_for_display", "do_not_save_samples", "do_not_save_grid")


def parse_prompt_line(line: str) -> dict:
    """One line's settings, as the script's `cmdargs` reads them; ValueError for what it would fail on."""
    args = shlex.split(line)
    out: dict = {}
    pos = 0
    while pos < len(args):
        arg = args[pos]
        if not arg.startswith("--"):
            raise ValueError(f'must start with "--": {arg}')
        if pos + 1 >= len(args):
            raise ValueError(f"missing argument for command line option {arg}")
        tag = arg[2:]
        if tag in ("prompt", "negative_prompt"):
            pos += 1
            words = []
            while pos < len(args) and not args[pos].startswith("--"):
                words.append(args[pos])
                pos += 1
            out[tag] = " ".join(words)
            continue
        read = PROMPT_TAGS.get(tag)
        if read is None:
            raise ValueError(f"unknown commandline option: {arg}")
        out[tag] = read(args[pos + 1])
        pos += 2
    return out


def prompt_lines(text: str) -> list[tuple[int, dict, str | None]]:
    """(line number, settings, note) for each non-empty line: a line with `--` is options (or, unparseable, the
    prompt with a note saying why, as A1111 takes it), any other line the prompt."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if "--" not in line:
            out.append((number, {"prompt": line}, None))
            continue
        try:
            out.append((number, parse_prompt_line(line), None))
        except ValueError as e:
            out.append((number, {"prompt": line}, f"{e}: the whole line is the prompt (as A1111 reads it)"))
    return out


def payload_of_line(settings: dict) -> dict:
    """The A1111 txt2img payload of a line's settings: the script sets the attributes the API's fields of the same
    names set (sampler names are matched without case by the registry, as the script's samplers_map does)."""
    return {k: v for k, v in settings.items() if k not in IGNORED_TAGS and k not in ("sd_model", "styles")}


def payload_values(payload: dict, where: str) -> dict:
    """Request fields of an A1111 txt2img payload, by the option table; a bad value fails in one line."""
    from sd1kit.pipeline.option_surfaces import options_from_api

    if not isinstance(payload, dict):
        raise Sd1kitError(where, f"expected a JSON object of txt2img fields, not {type(payload).__name__}")
    values = options_from_api(payload, "txt2img")
    for key in ("prompt", "negative_prompt"):
        if payload.get(key) is not None:
            if not isinstance(payload[key], str):
                raise Sd1kitError(f"{where}: {key}", "expected text")
            values[key] = payload[key]
    return values


# --- the sources ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Base:
    """What the command line gives every job: its request (flags with their sources) and the folders to find
    models in."""

    request: GenerationRequest
    models_dir: Path | None = None
    model_given: bool = False  # --model: it wins over a picture's Model and a line's --sd_model


def _line_job(index: int, label: str, base: Base, settings: dict | None, payload: dict, note: str | None) -> Job:
    try:
        values = payload_values(payload, label)
        request = base.request.given("batch", **values)
        model = (settings or {}).get("sd_model") or payload.get("sd_model_checkpoint") or \
            (payload.get("override_settings") or {}).get("sd_model_checkpoint")
        if model and not base.model_given:
            from sd1kit.pipeline.from_picture import resolve_file

            request = request.given("batch", model=resolve_file(str(model), "Stable-diffusion"))
    except Sd1kitError as e:
        return Job(index, label, None, str(e))
    return Job(index, label, request, note=note)


def from_prompts_file(path: Path, base: Base) -> list[Job]:
    text = _read_text(path)
    return [_line_job(i, f"{path.name} line {number}", base, settings, payload_of_line(settings), note)
            for i, (number, settings, note) in enumerate(prompt_lines(text))]


def from_jsonl(path: Path, base: Base) -> list[Job]:
    jobs = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        label = f"{path.name} line {number}"
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as e:
            jobs.append(Job(len(jobs), label, None, f"{label}: not JSON ({e.msg} at column {e.colno})"))
            continue
        jobs.append(_line_job(len(jobs), label, base, None, payload, None))
    return jobs


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def from_pictures(folder: Path, base: Base) -> list[Job]:
    """Each picture's request (`--from`), the command line's flags over it; its checkpoint found by the picture's
    Model / Model hash in the models folder unless --model names one."""
    from sd1kit.pipeline.from_picture import find_checkpoint, models_dir, read_picture_parameters, \
        request_from_infotext

    jobs = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES and p.is_file()):
        try:
            request, fields = request_from_infotext(read_picture_parameters(path), path.name)
            given = {k: getattr(base.request, k) for k, s in base.request.sources.items() if s == "cli"}
            request = request.given("cli", **given)
            if not base.model_given:
                folder_ = base.models_dir / "Stable-diffusion" if base.models_dir else models_dir()
                request = request.with_(model=str(find_checkpoint(fields.get("Model"), fields.get("Model hash"),
                                                                  folder_)))
            else:
                request = request.with_(model=base.request.model)
            jobs.append(Job(len(jobs), path.name, request))
        except Sd1kitError as e:
            jobs.append(Job(len(jobs), path.name, None, str(e)))
    if not jobs:
        raise Sd1kitError(str(folder), "holds no pictures (.png, .jpg, .webp)")
    return jobs


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise Sd1kitError(str(path), "is not UTF-8 text") from None
    except OSError as e:
        raise Sd1kitError(str(path), f"cannot be read ({e.strerror or e.__class__.__name__})") from None


def finished(jobs: list[Job]) -> tuple[list[Job], list[str]]:
    """Jobs with their -1 seeds fixed and their model's hash, and notes: jobs that repeat an earlier one (the same
    request and seed: made once) are left out."""
    from sd1kit.formats.hashes import file_hashes

    hashes: dict = {}
    out, seen, notes = [], {}, []
    for job in jobs:
        if job.request is not None:
            request = fixed_seeds(job.request, job.label)
            model = request.model
            if model not in hashes:
                hashes[model] = file_hashes(model).sha256 if model and Path(model).is_file() else model
            job = dataclasses.replace(job, request=request, model_sha256=hashes[model])
        if job.id in seen:
            notes.append(f"{job.label} repeats {seen[job.id]} (the same request and seed): made once")
            continue
        seen[job.id] = job.label
        out.append(job)
    return out, notes
