"""`sd1kit batch` in this process: the job sources read as their tools read them (A1111's "Prompts from file or
textbox" lines, JSONL payloads, a folder of pictures, an X/Y grid), pictures pixel-identical to `sd1kit generate`
of the same requests, the manifest and the folder in agreement, a rerun that does nothing, bad jobs listed with
one-line reasons while the others finish. On Ray: tests/test_batch_ray.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sd1kit.batch.jobs import Base, finished, from_prompts_file, parse_prompt_line, prompt_lines
from sd1kit.pipeline.request import GenerationRequest

# A1111's scripts/prompts_from_file.py on these lines (its `cmdargs`, and its fallback of a line it cannot parse to
# the whole line as the prompt), written out by hand from its code
A1111_LINES = [
    ("a cat", {"prompt": "a cat"}),
    ('--prompt "a cat, smile" --negative_prompt lowres bad hands --steps 5 --seed 7',
     {"prompt": "a cat, smile", "negative_prompt": "lowres bad hands", "steps": 5, "seed": 7}),
    ("--prompt x --sampler_name 'dpm++ 2m' --cfg_scale 5.5 --restore_faces true --tiling yes",
     {"prompt": "x", "sampler_name": "dpm++ 2m", "cfg_scale": 5.5, "restore_faces": True, "tiling": False}),
    ("--width 96 --height 64 --n_iter 2 --batch_size 3 --subseed 4 --subseed_strength 0.5",
     {"width": 96, "height": 64, "n_iter": 2, "batch_size": 3, "subseed": 4, "subseed_strength": 0.5}),
    ("--prompt a --negative_prompt --steps 3", {"prompt": "a", "negative_prompt": "", "steps": 3}),
]
UNPARSEABLE = ["--prompt x --foo 3", "a -- b", "--prompt x --steps", "--steps five"]


@pytest.mark.parametrize("line,expected", A1111_LINES)
def test_prompt_lines_read_as_a1111_reads_them(line, expected):
    assert prompt_lines(line) == [(1, expected, None)]
    if "--" in line:
        assert parse_prompt_line(line) == expected


def test_a_line_a1111_cannot_parse_is_the_prompt_with_a_note():
    text = "\n\n".join(UNPARSEABLE) + "\n   \n"
    lines = prompt_lines(text)
    assert [n for n, _, _ in lines] == [1, 3, 5, 7]  # blank lines skipped, numbers kept
    for (_, settings, note), line in zip(lines, UNPARSEABLE):
        assert settings == {"prompt": line} and note and "\n" not in note


def test_prompt_file_jobs_are_requests_on_the_command_lines_base(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(line for line, _ in A1111_LINES) + "\n--prompt y --sampler_name nosuch\n")
    base = Base(GenerationRequest(steps=2, width=64, height=64, negative_prompt="base"))
    jobs = from_prompts_file(path, base)
    r = [j.request for j in jobs]
    assert r[0].prompt == "a cat" and r[0].steps == 2 and r[0].negative_prompt == "base"
    assert (r[1].negative_prompt, r[1].steps, r[1].seed) == ("lowres bad hands", 5, 7)
    assert (r[2].sampler, r[2].cfg_scale) == ("dpm++ 2m", 5.5)  # matched without case when the job runs
    assert (r[3].width, r[3].height, r[3].batch_count, r[3].batch_size, r[3].subseed_strength) == (96, 64, 2, 3, .5)
    assert jobs[5].request.sampler == "nosuch"  # fails when it runs, with the registry's one line
    done, _ = finished(jobs)
    assert len({j.id for j in done}) == len(done) and all(j.request.seed != -1 for j in done)
    again, _ = finished(from_prompts_file(path, base))
    assert [j.id for j in again] == [j.id for j in done]  # -1 seeds fixed by content and place: a rerun finds them


def test_equal_lines_get_their_own_seeds_but_an_equal_seeded_line_is_made_once(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a cat\na cat\n--prompt b --seed 3\n--prompt b --seed 3\n")
    jobs, notes = finished(from_prompts_file(path, Base(GenerationRequest())))
    assert len(jobs) == 3 and jobs[0].request.seed != jobs[1].request.seed
    assert len(notes) == 1 and "line 4 repeats" in notes[0] and "line 3" in notes[0]


@pytest.fixture
def jobs_file(tmp_path):
    path = tmp_path / "jobs.txt"
    path.write_text("--prompt a cat --seed 11 --steps 2\n"
                    "--prompt a dog --seed 12 --steps 3 --sampler_name 'DPM++ 2M'\n"
                    "--prompt 1girl, smile --seed 13 --steps 2 --cfg_scale 4\n")
    return path


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_batch_equals_generate_and_a_rerun_does_nothing(cli, tiny_models, jobs_file, tmp_path):
    model = tiny_models["sd15"]
    out = tmp_path / "out"
    r = cli("batch", jobs_file, "--out", out, "--model", model, "--size", "64x64", "--quiet")
    assert r.code == 0, r.err
    entries = _manifest(out)
    assert [e["status"] for e in entries] == ["done"] * 3
    assert sorted(p.name for p in out.glob("*.png")) == sorted(e["outputs"][0]["file"] for e in entries)
    for e, (prompt, seed, extra) in zip(entries, [("a cat", 11, ["--steps", "2"]),
                                                  ("a dog", 12, ["--steps", "3", "--sampler", "DPM++ 2M"]),
                                                  ("1girl, smile", 13, ["--steps", "2", "--cfg", "4"])]):
        g = cli("generate", prompt, "--model", model, "--size", "64x64", "--seed", seed, *extra,
                "--out", tmp_path / "gen", "--quiet")
        assert g.code == 0, g.err
        made = Path(g.out.split("wrote ", 1)[1].strip())
        with Image.open(made) as a, Image.open(out / e["outputs"][0]["file"]) as b:
            assert a.info["parameters"] == b.info["parameters"]
        assert np.array_equal(_pixels(made), _pixels(out / e["outputs"][0]["file"]))
        assert e["seed"] == seed and e["request"]["prompt"] == prompt and len(e["outputs"][0]["sha256"]) == 64
    again = cli("batch", jobs_file, "--out", out, "--model", model, "--size", "64x64", "--quiet")
    assert again.code == 0 and "0 done, 3 already done" in again.out
    assert len(_manifest(out)) == 3 and len(list(out.glob("*.png"))) == 3


def test_bad_jobs_are_listed_and_the_others_finish(cli, tiny_models, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"prompt": "a", "seed": 1}, {"prompt": "b", "seed": 2, "sampler_name": "Nosuch Sampler"},
             {"prompt": "c <lora:missing_lora:1>", "seed": 3}, {"prompt": "d", "seed": 4, "steps": "many"}]
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    out = tmp_path / "out"
    r = cli("batch", jobs, "--out", out, "--model", tiny_models["sd15"], "--size", "64x64", "--steps", "1",
            "--quiet")
    assert r.code == 1 and "1 done, 0 already done, 4 failed" in r.out
    failed = [e for e in _manifest(out) if e["status"] == "failed"]
    assert {e["label"] for e in failed} == {"jobs.jsonl line 2", "jobs.jsonl line 3", "jobs.jsonl line 4",
                                            "jobs.jsonl line 5"}
    for e in failed:
        assert e["reason"] and "\n" not in e["reason"]
        assert f"failed: {e['label']}: {e['reason']}" in r.err
    reasons = " ".join(e["reason"] for e in failed)
    assert "Nosuch Sampler" in reasons and "missing_lora" in reasons and "steps" in reasons
    assert len(list(out.glob("*.png"))) == 1


def test_a_folder_of_pictures_is_regenerated_with_the_flags_over_them(cli, tiny_models, jobs_file, tmp_path):
    model = tiny_models["sd15"]
    first = tmp_path / "first"
    assert cli("batch", jobs_file, "--out", first, "--model", model, "--size", "64x64", "--quiet").code == 0
    again = tmp_path / "again"
    r = cli("batch", first, "--out", again, "--model", model, "--quiet")
    assert r.code == 0, r.err
    by_seed = {f["seed"]: f for f in _manifest(again)}
    assert len(by_seed) == 3
    for e in _manifest(first):  # the same pictures from their own parameters
        f = by_seed[e["seed"]]
        assert np.array_equal(_pixels(first / e["outputs"][0]["file"]), _pixels(again / f["outputs"][0]["file"]))
    changed = tmp_path / "changed"
    assert cli("batch", first, "--out", changed, "--model", model, "--cfg", "9", "--quiet").code == 0
    assert all(e["request"]["cfg_scale"] == 9.0 for e in _manifest(changed))


def _resolved(request) -> tuple[str, str]:
    from sd1kit.sampling.registry import resolve_sampler

    sampler, schedule = resolve_sampler(request.sampler, request.schedule)
    return sampler.name, schedule.name


def test_xy_grid_jobs_and_picture(cli, tiny_models, tmp_path):
    from sd1kit.batch.grid import grid_jobs, parse_axis

    axes = [parse_axis("Sampler=Euler a,DPM++ 2M Karras"), parse_axis("CFG scale=5, 7,9")]
    jobs = grid_jobs(axes, Base(GenerationRequest(prompt="a cat")))
    assert [(_resolved(j.request), j.request.cfg_scale) for j in jobs] == [
        (("Euler a", "Uniform"), 5.0), (("DPM++ 2M", "Karras"), 5.0), (("Euler a", "Uniform"), 7.0),
        (("DPM++ 2M", "Karras"), 7.0), (("Euler a", "Uniform"), 9.0), (("DPM++ 2M", "Karras"), 9.0)]
    assert [j.cell for j in jobs][:3] == [(0, 0, 0), (1, 0, 0), (0, 1, 0)]  # X fastest, as A1111's plot runs
    out = tmp_path / "grid"
    r = cli("batch", "--xy", "Sampler=Euler a,DPM++ 2M Karras", "--xy", "CFG scale=5,7,9", "--prompt", "a cat",
            "--out", out, "--model", tiny_models["sd15"], "--size", "64x64", "--steps", "1", "--seed", "5",
            "--quiet")
    assert r.code == 0, r.err
    with Image.open(out / "grid-0.png") as grid:
        assert grid.width > 2 * 64 and grid.height > 3 * 64  # two columns, three rows, and their labels
    for bad in ("Nonsense=1,2", "CFG scale", "Steps="):
        r = cli("batch", "--xy", bad, "--out", out, "--quiet")
        assert r.code == 2 and r.err.count("\n") == 1 and "--xy" in r.err


def test_sigint_stops_cleanly_and_the_rerun_resumes(tiny_models, tmp_path):
    """Ctrl-C on the driver: the job running is dropped (nothing half-written), the command ends with 130 and
    says how to resume; the same command again does the rest, none twice."""
    import os
    import signal
    import subprocess
    import sys
    import time

    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"--prompt picture {i} --seed {i} --steps 12\n" for i in range(8)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sd1kit.cli", "batch", str(jobs), "--out", str(out), "--model",
               str(tiny_models["sd15"]), "--size", "64x64", "--quiet"]
    env = {**os.environ, "SD1KIT_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (manifest.exists() and manifest.read_text().count("\n") >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    first = _manifest(out)
    assert proc.returncode == 130, stderr
    assert "stopped: run the same command again to resume" in stdout and "Traceback" not in stderr
    assert 2 <= len(first) < 8 and all(e["status"] == "done" for e in first)
    assert sorted(p.name for p in out.iterdir() if p.name != "manifest.jsonl") == \
        sorted(e["outputs"][0]["file"] for e in first)  # no temporary or half-written file
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    entries = _manifest(out)
    assert len(entries) == 8 and len({e["job"] for e in entries}) == 8
    assert len(list(out.glob("*.png"))) == 8
