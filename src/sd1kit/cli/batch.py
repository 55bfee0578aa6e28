"""`sd1kit batch`: many pictures from a list of jobs, in this process or on Ray (sd1kit.batch)."""

from __future__ import annotations

import sys
from pathlib import Path

from sd1kit.errors import Sd1kitError


def _jobs(args):
    """The jobs JOBS (and --xy) name, on the base the flags give."""
    from sd1kit.batch.grid import grid_jobs, parse_axis
    from sd1kit.batch.jobs import Base, finished, from_jsonl, from_pictures, from_prompts_file
    from sd1kit.cli.generate import _generate_request

    request, _ = _generate_request(args)
    base = Base(request, Path(args.models_dir) if args.models_dir else None, model_given=args.model is not None)
    axes = [parse_axis(a) for a in args.xy or []]
    if axes and args.jobs:
        raise Sd1kitError("--xy", "a grid is its own batch: give JOBS or --xy, not both")
    if axes:
        jobs = grid_jobs(axes, base)
    elif not args.jobs:
        raise Sd1kitError("JOBS", "give a prompts file, a JSONL file or a folder of pictures (or --xy for a grid)")
    else:
        source = Path(args.jobs)
        if source.is_dir():
            jobs = from_pictures(source, base)
        elif not source.is_file():
            raise Sd1kitError(str(source), "no such file or folder")
        elif source.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            jobs = from_jsonl(source, base)
        else:
            jobs = from_prompts_file(source, base)
    jobs, notes = finished(jobs)
    return jobs, notes + [f"{j.label}: {j.note}" for j in jobs if j.note], axes


def _executor(args):
    from sd1kit.batch.run import InProcess
    from sd1kit.pipeline.runtime import given_runtime

    worker = {"runtime": given_runtime(args), "models_dir": args.models_dir}
    if args.ray is None:
        return InProcess(threads=args.threads_per_worker, **worker)
    from sd1kit.batch.on_ray import OnRay

    return OnRay(args.ray, args.workers, args.threads_per_worker or 1, **worker)


def _cmd_batch(args) -> int:
    from sd1kit.batch.run import run_batch

    jobs, notes, axes = _jobs(args)
    for note in notes:
        if not args.quiet:
            print(f"sd1kit: {note}", file=sys.stderr)
    out = Path(args.out)
    outcome = run_batch(jobs, out, _executor(args), quiet=args.quiet)
    if axes:
        from sd1kit.batch.grid import write_grids

        if not outcome.stopped:
            from sd1kit.batch.manifest import Manifest

            entries = Manifest(out).entries  # this run's jobs and an earlier run's
            for path in write_grids(axes, jobs, out, lambda job: _first_picture(out, entries.get(job.id))):
                print(f"wrote {path}")
    for label, reason in outcome.failed:
        print(f"sd1kit: failed: {label}: {reason}", file=sys.stderr)
    print(f"{outcome.done} done, {outcome.skipped} already done, {len(outcome.failed)} failed"
          + (", stopped: run the same command again to resume" if outcome.stopped else "")
          + f"; {outcome.pictures} pictures in {out} (manifest.jsonl)")
    return 130 if outcome.stopped else (1 if outcome.failed else 0)


def _first_picture(out: Path, entry: dict | None):
    """A grid cell's picture: its job's first, where the manifest has it done."""
    from PIL import Image

    if not entry or entry.get("status") != "done" or not entry.get("outputs"):
        return None
    with Image.open(out / entry["outputs"][0]["file"]) as im:
        return im.convert("RGB")


def add_parser(sub) -> None:
    from sd1kit.cli.generate import _add_controlnet_flags, _add_source_flags
    from sd1kit.pipeline.option_surfaces import add_cli_flags
    from sd1kit.pipeline.runtime import add_runtime_flags

    p = sub.add_parser("batch", help="many pictures: a prompts file (A1111's syntax), JSONL requests, a folder of "
                                     "pictures to regenerate, or an X/Y/Z grid; in-process or on Ray; resumable")
    p.add_argument("jobs", nargs="?", metavar="JOBS",
                   help="prompts file (.txt, one prompt or --tag line each), .jsonl (one txt2img payload a line), "
                        "or a folder of pictures (each regenerated from its parameters)")
    p.add_argument("--out", required=True, help="the folder for the pictures and manifest.jsonl")
    p.add_argument("--xy", action="append", metavar="KEY=V1,V2",
                   help="an X/Y/Z grid axis: an infotext key and its values (repeat: X, then Y, then Z); also "
                        "writes grid-N.png with labels")
    p.add_argument("--prompt", help="the prompt of --xy's jobs (and the base of JOBS's)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run on Ray: auto (this machine's cluster, else a local one) or a cluster's address")
    p.add_argument("--workers", type=int, default=2, help="Ray workers (actors), each holding a model")
    p.add_argument("--threads-per-worker", type=int, help="CPU threads per worker (Ray: default 1)")
    _add_source_flags(p, picture=False)
    add_cli_flags(p)
    _add_controlnet_flags(p)
    add_runtime_flags(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_batch)
