"""Hostile files as an attacker would make them, and a runner that puts each through sd1kit's commands.

A `HostileCase` builds its file(s) in a folder of its own and names the commands that open that kind of file; the
runner (`run_command`) forks a child of an already-imported process for each command, so one case costs
milliseconds of start-up, and reports the exit status, the seconds, the child's peak RSS and its stderr. A child
past its time is killed, so a hang is a result, not a stuck run. Used by the tests (tests/test_hostile_*.py) and
by bench/hostile.py; the cases themselves live beside the readers they attack (hostile_files, hostile_sidecars,
hostile_pictures).
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# argv templates: {file} the built file, {dir} the case's folder, {model} a valid tiny model in {dir}/models
INSPECT = ("inspect", "{file}")
CONVERT = ("convert", "{file}", "{dir}/out/converted.safetensors")
MERGE = ("merge", "{file}", "{file}", "--alpha", "0.5", "--out", "{dir}/out/merged.safetensors", "--quiet")
BAKE_INTO = ("lora", "bake", "{file}", "{lora}", "--out", "{dir}/out/baked.safetensors")
BAKE_ADAPTER = ("lora", "bake", "{model}", "{file}", "--out", "{dir}/out/baked.safetensors")
SCAN = ("models", "scan", "{dir}/models")
GENERATE = ("generate", "--model", "{file}", "--steps", "1", "--size", "64x64", "a cat",
            "--out", "{dir}/out/picture.png")
INFO = ("info", "{file}")
INFO_JSON = ("info", "--json", "{file}")
STRIP = ("info", "--strip", "{file}", "--out", "{dir}/out/stripped.png")
FROM_PICTURE = ("generate", "--from", "{file}", "--models-dir", "{dir}/models", "--dry-run")

MODEL_COMMANDS = (INSPECT, CONVERT, MERGE, BAKE_INTO, SCAN, GENERATE)


@dataclass(frozen=True)
class HostileCase:
    """One hostile file and the commands that open its kind.

    `build(folder)` writes the file (and anything beside it) into `folder` and returns the path the commands get as
    {file}. `expect` is a regular expression the one-line refusal must match (case-insensitive). `exit_code` is what
    every command must end with (2: a refusal with one line). `needs_model`: the runner writes a valid tiny model to
    {dir}/models/tiny.safetensors first (and a tiny LoRA as {lora}).
    """

    name: str
    kind: str
    build: Callable[[Path], Path]
    commands: tuple[tuple[str, ...], ...]
    expect: str = ""
    exit_code: int = 2
    needs_model: bool = False
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    exit_code: int | None  # None: killed after the time limit (a hang)
    seconds: float
    peak_rss_mb: float
    stderr: str
    signal: int | None = None
    stdout: str = field(default="", repr=False)

    @property
    def lines(self) -> list[str]:
        return [l for l in self.stderr.splitlines() if l.strip()]

    def describe(self) -> str:
        if self.exit_code is None:
            state = "HANG (killed)" if self.signal is None else f"killed by signal {self.signal}"
        else:
            state = f"exit {self.exit_code}"
        first = self.lines[0] if self.lines else ""
        return f"{state}, {self.seconds:.2f} s, {self.peak_rss_mb:.0f} MB: {first[:160]}"


def expand(argv: tuple[str, ...], **values: str) -> list[str]:
    return [a.format(**values) for a in argv]


def run_command(argv: list[str], timeout: float = 30.0, memory_mb: int | None = 4096) -> Outcome:
    """Run `sd1kit ARGV` in a fresh child; return its exit code, time, peak RSS and stderr.

    Children are forked by a fork server that has imported sd1kit and torch but run nothing (a process that has
    run torch's OpenMP pool cannot fork safely), so each costs milliseconds. The child gets its own stdout/stderr
    files and an address-space cap (`memory_mb`), so a blow-up cannot take the machine; a child past `timeout`
    seconds is killed and reported as a hang.
    """
    server = _fork_server()
    server.stdin.write(json.dumps({"argv": list(argv), "timeout": timeout, "memory_mb": memory_mb}) + "\n")
    server.stdin.flush()
    reply = json.loads(server.stdout.readline())
    return Outcome(tuple(argv), reply["exit_code"], reply["seconds"], reply["peak_rss_mb"], reply["stderr"],
                   reply["signal"], reply["stdout"])


_SERVER: subprocess.Popen | None = None


def _fork_server() -> subprocess.Popen:
    global _SERVER
    if _SERVER is None or _SERVER.poll() is not None:
        _SERVER = subprocess.Popen([sys.executable, "-c", "from sd1kit.dev.hostile import serve; serve()"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        atexit.register(_SERVER.kill)
    return _SERVER


def serve() -> None:
    """The fork server's loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    import torch  # noqa: F401 - imported once here, so children start warm

    import sd1kit.cli  # noqa: F401
    import sd1kit.pipeline.generate  # noqa: F401 - diffusers' modules: 4-9 s of a child's first generation

    replies = os.fdopen(os.dup(1), "w")
    for line in sys.stdin:
        request = json.loads(line)
        replies.write(json.dumps(_fork_one(request["argv"], request["timeout"], request["memory_mb"])) + "\n")
        replies.flush()


def _fork_one(argv: list[str], timeout: float, memory_mb: int | None) -> dict:
    from sd1kit.cli import main

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the server's loop
            code = 70
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                if memory_mb:
                    limit = memory_mb << 20
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                code = main(list(argv))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # noqa: BLE001 - reported as the child's stderr
                os.write(2, f"uncaught {e.__class__.__name__}: {e}\n".encode())
                code = 71
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code if isinstance(code, int) else 1)
        status, usage, killed = _wait(pid, timeout)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    signalled = os.WIFSIGNALED(status) and not killed
    return {"exit_code": None if killed or signalled else os.WEXITSTATUS(status), "seconds": seconds,
            "peak_rss_mb": usage.ru_maxrss / 1024, "stderr": stderr[-20000:], "stdout": stdout[-20000:],
            "signal": os.WTERMSIG(status) if signalled else None}


def _wait(pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage, True
        time.sleep(0.01)


def prepare(case: HostileCase, folder: Path) -> dict[str, str]:
    """Build the case in `folder` (and the tiny model it needs); return the template values."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    values = {"dir": str(folder), "model": str(folder / "models" / "tiny.safetensors"),
              "lora": str(folder / "tiny-lora.safetensors")}
    if case.needs_model:
        _tiny_model(Path(values["model"]), Path(values["lora"]))
    values["file"] = str(case.build(folder))
    return values


def case_builder(cases: dict[str, HostileCase], make_folder: Callable[[str], Path]):
    """`get(name) -> (folder, values)`: each case built once, in a folder of its own from `make_folder(name)`
    (e.g. pytest's tmp_path_factory.mktemp), for all the commands that open it."""
    built: dict[str, tuple[Path, dict[str, str]]] = {}

    def get(name: str) -> tuple[Path, dict[str, str]]:
        if name not in built:
            folder = make_folder(name)
            built[name] = (folder, prepare(cases[name], folder))
        return built[name]

    return get


def _tiny_model(model: Path, lora: Path) -> None:
    import shutil

    cache = Path(tempfile.gettempdir()) / f"sd1kit-hostile-tiny-{os.getuid()}"
    if not (cache / "tiny.safetensors").exists():
        cache.mkdir(exist_ok=True)
        from sd1kit.dev.adapters import write_synthetic_adapter
        from sd1kit.dev.tiny import tiny_state_dict, write_tiny_model

        write_tiny_model(cache / "tiny.safetensors")
        shapes = {k: tuple(v.shape) for k, v in tiny_state_dict().items()}
        write_synthetic_adapter(cache / "tiny-lora.safetensors", shapes, rank=2)
    shutil.copyfile(cache / "tiny.safetensors", model)
    shutil.copyfile(cache / "tiny-lora.safetensors", lora)


def all_cases() -> list[HostileCase]:
    """Every case of the three case modules, in a stable order."""
    from sd1kit.dev import hostile_files, hostile_pictures, hostile_sidecars

    return [*hostile_files.CASES, *hostile_sidecars.CASES, *hostile_pictures.CASES]
