"""The HTTP server under load: N requests from C concurrent clients against `sd1kit serve` on the built-in demo
model, mixing A1111's blocking /sdapi/v1/txt2img and sd1kit's job API (submit, then poll until done).

The server runs in its own process on 127.0.0.1 (ServerConfig with no models folder: the built-in model), with a
queue small enough that the clients fill it: a 429 is retried after its Retry-After and counted, never lost.
Every request must end in a picture (a txt2img answering with its own seed, or a job done with its images); any
other end is a lost request. The server's memory is read from /sdapi/v1/memory (ram.used: current RSS; ram.peak:
its ru_maxrss) during and after the run.

    .venv/bin/python bench/server.py [--requests 500] [--clients 16] [--queue 4] [--jobs-share 0.33]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/inspect.py

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402

SERVER = """
import sys, uvicorn
from sd1kit.server.app import ServerConfig, create_app
uvicorn.run(create_app(ServerConfig(models_dir=None, queue_size=int(sys.argv[2]), device="cpu")),
            host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
MAX_TRIES = 200  # 429s before a request counts as lost


def cpu_model() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "unknown CPU")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[dict] = []  # one per request: kind, ok, latency, retries, why

    def add(self, **row):
        with self.lock:
            self.rows.append(row)


def retry_after(r: httpx.Response) -> float:
    try:
        return max(0.05, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def one_txt2img(c: httpx.Client, payload: dict) -> tuple[bool, int, str]:
    retries = 0
    while retries < MAX_TRIES:
        r = c.post("/sdapi/v1/txt2img", json=payload)
        if r.status_code == 429:
            retries += 1
            time.sleep(retry_after(r))
            continue
        if r.status_code != 200:
            return False, retries, f"HTTP {r.status_code}: {r.text[:120]}"
        body = r.json()
        seeds = json.loads(body["info"])["all_seeds"]
        if seeds != [payload["seed"]] or len(body["images"]) != 1:
            return False, retries, f"wrong answer: seeds {seeds} for {payload['seed']}"
        return True, retries, ""
    return False, retries, f"{MAX_TRIES} 429s"


def one_job(c: httpx.Client, payload: dict, poll: float) -> tuple[bool, int, str]:
    retries = 0
    while True:
        r = c.post("/sd1kit/v1/jobs", json={"kind": "txt2img", "payload": payload})
        if r.status_code == 429:
            retries += 1
            if retries >= MAX_TRIES:
                return False, retries, f"{MAX_TRIES} 429s"
            time.sleep(retry_after(r))
            continue
        if r.status_code != 200:
            return False, retries, f"submit HTTP {r.status_code}: {r.text[:120]}"
        job = r.json()["id"]
        break
    while True:
        r = c.get(f"/sd1kit/v1/jobs/{job}")
        if r.status_code != 200:
            return False, retries, f"poll HTTP {r.status_code}: {r.text[:120]}"
        status = r.json()
        if status["state"] == "done":
            result = status["result"] or {}
            seeds = json.loads(result.get("info", "{}")).get("all_seeds")
            if seeds != [payload["seed"]] or len(result.get("images") or []) != 1:
                return False, retries, f"wrong answer: seeds {seeds} for {payload['seed']}"
            return True, retries, ""
        if status["state"] in ("failed", "cancelled"):
            return False, retries, f"job {status['state']}: {status.get('error')}"
        time.sleep(poll)


def client(url: str, next_index, args, stats: Stats) -> None:
    with httpx.Client(base_url=url, timeout=600) as c:
        while True:
            i = next_index()
            if i is None:
                return
            kind = "job API" if int((i + 1) * args.jobs_share) > int(i * args.jobs_share) else "txt2img"
            payload = {"prompt": "red circle, blue background", "steps": args.steps, "width": args.size,
                       "height": args.size, "seed": 1000 + i, "sampler_name": "Euler"}
            start = time.perf_counter()
            try:
                ok, retries, why = (one_job(c, payload, args.poll) if kind == "job API" else one_txt2img(c, payload))
            except (httpx.HTTPError, ValueError, KeyError) as e:
                ok, retries, why = False, 0, f"{type(e).__name__}: {e}"
            stats.add(kind=kind, ok=ok, latency=time.perf_counter() - start, retries=retries, why=why)


def memory(url: str) -> dict:
    return httpx.get(url + "/sdapi/v1/memory", timeout=30).json()["ram"]


def start_server(port: int, queue: int, log) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(queue)], stdout=log, stderr=log, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/internal/ping", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not answer /internal/ping within 120 s")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [rows[0], tuple("-" * w for w in widths), *rows[1:]]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--queue", type=int, default=4, help="the server's queue_size (small: 429s happen)")
    parser.add_argument("--jobs-share", type=float, default=1 / 3, help="share of requests sent to the job API")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between job API polls")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="sd1kit-bench-server-") as tmp:
        log = open(Path(tmp) / "server.log", "w+")
        proc = start_server(port, args.queue, log)
        try:
            started = memory(url)["used"]
            warm = time.perf_counter()
            with httpx.Client(base_url=url, timeout=600) as c:  # the model loaded before the clock starts
                ok, _, why = one_txt2img(c, {"prompt": "warm up", "steps": args.steps, "width": args.size,
                                             "height": args.size, "seed": 1, "sampler_name": "Euler"})
            if not ok:
                raise RuntimeError(f"warm-up request failed: {why}")
            warm = time.perf_counter() - warm
            warmed = memory(url)["used"]

            counter, lock = iter(range(args.requests)), threading.Lock()

            def next_index():
                with lock:
                    return next(counter, None)

            stats, sampled, done = Stats(), [], threading.Event()

            def sampler():
                while not done.is_set():
                    try:
                        sampled.append(memory(url)["used"])
                    except httpx.HTTPError:
                        pass
                    done.wait(0.5)

            watcher = threading.Thread(target=sampler, daemon=True)
            watcher.start()
            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(url, next_index, args, stats))
                       for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            done.set()
            watcher.join()
            final = memory(url)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.seek(0)
            server_log = log.read()
            log.close()

    rows = stats.rows
    lost = [r for r in rows if not r["ok"]]
    mb = lambda b: f"{b / (1 << 20):.0f} MB"  # noqa: E731
    print(f"# {cpu_model()} ({os.cpu_count()} CPUs); sd1kit serve on the built-in demo model, queue_size "
          f"{args.queue}; {args.requests} requests ({args.size}x{args.size}, {args.steps} step, Euler) from "
          f"{args.clients} clients, {args.jobs_share:.0%} through the job API (polled every {args.poll * 1000:.0f} "
          f"ms); warm-up (model load + first picture) {warm:.1f} s")
    per_kind = [("requests", "count", "ok", "lost", "429s", "req/min", "p50 s", "p95 s", "max s")]
    for kind in ("txt2img", "job API", "all"):
        group = [r for r in rows if kind == "all" or r["kind"] == kind]
        ok = [r["latency"] for r in group if r["ok"]]
        per_kind.append((kind, str(len(group)), str(len(ok)), str(len(group) - len(ok)),
                         str(sum(r["retries"] for r in group)), f"{len(ok) / elapsed * 60:.0f}",
                         f"{percentile(ok, 0.5):.2f}", f"{percentile(ok, 0.95):.2f}",
                         f"{max(ok) if ok else float('nan'):.2f}"))
    print(table(per_kind))
    print()
    retried = sum(1 for r in rows if r["retries"])
    print(table([("measure", "value"),
                 ("wall time", f"{elapsed:.1f} s"),
                 ("requests/min", f"{sum(r['ok'] for r in rows) / elapsed * 60:.0f}"),
                 ("p50 / p95 latency (incl. 429 waits)",
                  f"{percentile([r['latency'] for r in rows if r['ok']], 0.5):.2f} s / "
                  f"{percentile([r['latency'] for r in rows if r['ok']], 0.95):.2f} s"),
                 ("429 answers (each retried after Retry-After)",
                  f"{sum(r['retries'] for r in rows)} ({retried} requests retried at least once)"),
                 ("lost requests", str(len(lost))),
                 ("server RSS at start / after warm-up", f"{mb(started)} / {mb(warmed)}"),
                 ("server RSS, highest sampled (0.5 s)", mb(max(sampled)) if sampled else "n/a"),
                 ("server RSS final (ram.used)", mb(final["used"])),
                 ("server peak RSS (ram.peak, ru_maxrss)", mb(final.get("peak", 0)))]))
    if lost:
        print("\nlost:", file=sys.stderr)
        for r in lost[:20]:
            print(f"  {r['kind']}: {r['why']}", file=sys.stderr)
    if server_log.strip():
        print("\nserver log (last lines):\n" + "\n".join(server_log.splitlines()[-15:]), file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
