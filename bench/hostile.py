"""Hostile files through sd1kit's commands: per case and command, the outcome, the seconds and the peak RSS.

Every case of sd1kit.dev.hostile (model files, yaml sidecars and recipes, pictures and long texts) is built in a
temporary folder and put through each command that opens its kind, each run in a fresh forked process with an
address-space cap (`--memory-mb`) and a time limit (`--timeout`), so a hang or a blow-up is a row of the table,
not a stuck run. The limits the tests hold them to: 5 s and 500 MB for a refusal.

    .venv/bin/python bench/hostile.py [--only NAME-SUBSTRING] [--timeout 30] [--memory-mb 4096]   # ~2 min
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

from sd1kit.dev.hostile import all_cases, expand, prepare, run_command  # noqa: E402

LIMIT_SECONDS, LIMIT_MB = 5.0, 500


def cpu_model() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "unknown CPU")


def _reason(outcome, file: str) -> str:
    """The refusal's reason; for a listing (models scan), the problem it lists for the case's file."""
    if outcome.lines and outcome.exit_code != 0:
        first = outcome.lines[0]
        return first.split(": ", 2)[-1] if first.startswith("sd1kit:") else first
    entry = outcome.stdout.split(file, 1)[-1].split("\n/", 1)[0].strip().splitlines() or [""]
    return next((l.strip() for l in entry if "problem:" in l), entry[0])


def _row(case, argv_template, outcome, file: str) -> tuple[str, ...]:
    command = " ".join(a for a in argv_template[:2] if not a.startswith("{"))
    if outcome.exit_code is None:
        result = "HANG" if outcome.signal is None else f"signal {outcome.signal}"
    else:
        result = f"exit {outcome.exit_code}"
    within = outcome.exit_code is not None and (
        outcome.exit_code == 0 or (outcome.seconds < LIMIT_SECONDS and outcome.peak_rss_mb < LIMIT_MB))
    reason = _reason(outcome, file) or ""
    return (case.name, command, result, f"{outcome.seconds:.2f}", f"{outcome.peak_rss_mb:.0f}",
            "yes" if within else "NO", reason[:70])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a run counts as a hang")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space cap of each run")
    args = parser.parse_args()
    print(f"# {cpu_model()}; limits for a refusal: {LIMIT_SECONDS:.0f} s, {LIMIT_MB} MB peak RSS "
          "(a forked process starts at ~160-190 MB with torch imported)")
    header = ("case", "command", "outcome", "seconds", "peak MB", "within", "reason")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sd1kit-hostile-") as tmp:
        for case in all_cases():
            if args.only and args.only not in case.name:
                continue
            values = prepare(case, Path(tmp) / case.name)
            for template in case.commands:
                outcome = run_command(expand(template, **values), args.timeout, args.memory_mb)
                rows.append(_row(case, template, outcome, values["file"]))
                print("  ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    bad = [r for r in rows if r[5] != "yes"]
    print(f"\n{len(rows)} runs of {len({r[0] for r in rows})} cases; {len(bad)} outside the limits")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
