"""Hostile pictures and prompts (issue 20), through every command that opens them: each ends within 5 s and 500 MB
with the exit status its case states: a one-line refusal naming the file (exit 2), or a bounded read (exit 0),
never a traceback, an internal error, a hang. Then: `info --strip` leaves no stealth metadata; every prompt and
infotext parser stays fast on 100 000 characters built to make it quadratic, and gives what the old (regex,
per-bracket) implementations gave, kept here as references; and the picture containers, infotexts, prompts and
JSON readers, fuzzed, raise nothing but Sd1kitError, each input in under 2 s. The cases are in
sd1kit.dev.hostile_pictures.

Fuzz budget (examples per test): containers 3 x 120, infotexts 400, prompts 600, JSON readers 5 x 150; the
equivalence checks 1500-3000 each (the whole file runs in about two minutes on two cores, half of it the cases).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import metadata_samples as S
from sd1kit.cli.info import _format_info
from sd1kit.dev import hostile_pictures as H
from sd1kit.dev.hostile import case_builder, expand, run_command
from sd1kit.errors import Sd1kitError
from sd1kit.metadata.containers import Containers
from sd1kit.metadata.infotext import _raw_json_spans, parse_infotext, split_infotext
from sd1kit.metadata.readers import read_found, read_picture, read_text
from sd1kit.metadata.readers.drawthings import user_comment
from sd1kit.metadata.stealth import stealth_extent
from sd1kit.metadata.strip import strip_picture
from sd1kit.prompts.attention import parse_prompt_attention
from sd1kit.prompts.compose import split_and
from sd1kit.prompts.extra_networks import parse_extra_networks
from sd1kit.prompts.schedule import prompt_schedule

MAX_SECONDS, MAX_MB, PARSE_SECONDS = 5.0, 500, 2.0
BY_NAME = {c.name: c for c in H.CASES}
RUNS = [(c.name, i) for c in H.CASES for i in range(len(c.commands))]
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _label(argv: tuple[str, ...]) -> str:
    return "-".join(a.lstrip("-") for a in argv[:2] if not a.startswith("{"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return case_builder(BY_NAME, tmp_path_factory.mktemp)


@pytest.mark.parametrize("name,index", RUNS, ids=[f"{n}-{i}-{_label(BY_NAME[n].commands[i])}" for n, i in RUNS])
def test_hostile_picture_through_command(name, index, built):
    case = BY_NAME[name]
    _folder, values = built(name)
    outcome = run_command(expand(case.commands[index], **values), timeout=30)
    assert outcome.exit_code is not None, f"killed: {outcome.describe()}"
    assert outcome.seconds < MAX_SECONDS and outcome.peak_rss_mb < MAX_MB, outcome.describe()
    assert outcome.exit_code == case.exit_code, outcome.describe() + "\n" + outcome.stderr[-2000:]
    assert "internal error" not in outcome.stderr and "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    if case.exit_code == 2:
        assert len(outcome.lines) == 1, outcome.stderr
        line = outcome.lines[0]
        assert line.startswith("sd1kit: ") and values["file"] in line and case.expect in line.lower(), line
    else:
        assert outcome.stdout.strip(), "a successful read prints what it read"
        if len(outcome.stdout) < 19_000:  # the runner keeps the last 20 000 characters
            assert case.expect in outcome.stdout.lower(), outcome.stdout[:2000]
        assert all(line.startswith("sd1kit: ") for line in outcome.lines), outcome.stderr[-2000:]


# --- info --strip removes stealth metadata ---

@pytest.mark.parametrize("make", [
    lambda d: S.stealth(d / "a.png", S.A1111_REAL, "stealth_pngcomp", "RGBA"),
    lambda d: S.stealth(d / "b.png", S.A1111_REAL, "stealth_pnginfo", "RGBA"),
    lambda d: S.stealth(d / "c.png", S.A1111_REAL, "stealth_rgbcomp", "RGB"),
    lambda d: S.stealth(d / "d.png", S.A1111_REAL, "stealth_rgbinfo", "RGB"),
    H.stealth_infotext,
    H.stealth_bomb,
], ids=["pngcomp", "pnginfo", "rgbcomp", "rgbinfo", "opaque-alpha", "gzip-bomb"])
def test_strip_leaves_no_stealth_metadata(make, tmp_path, cli):
    src = make(tmp_path)
    with Image.open(src) as image:
        assert stealth_extent(image) is not None
        before = np.asarray(image.convert("RGBA"))
    out = tmp_path / "clean.png"
    r = cli("info", "--strip", src, "--out", out)
    assert r.code == 0 and "stealth" in r.out and "re-encoded" in r.out, (r.out, r.err)
    assert not r.err
    with Image.open(out) as image:
        assert stealth_extent(image) is None
        after = np.asarray(image.convert("RGBA"))
    assert read_picture(out).tool is None and "stealth" not in read_picture(out).raw
    assert (after ^ before).max() <= 1  # only least significant bits changed


def test_strip_without_stealth_keeps_the_image_data(tmp_path, cli):
    src = S.png(tmp_path / "a.png", {"parameters": S.A1111_REAL}, image=S.picture("RGBA"))
    r = cli("info", "--strip", src, "--out", tmp_path / "clean.png")
    assert r.code == 0 and "image data unchanged" in r.out
    with Image.open(src) as a, Image.open(tmp_path / "clean.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


# --- the old implementations, as references: what the linear ones must equal ---

def old_attention(text):
    """The per-bracket version (each closing bracket multiplies the rest of the result in a loop)."""
    token = re.compile(r"\\[()\[\]\\]|\\|[(\[]|:\s*(?P<weight>[+-]?[.\d]+)\s*\)|[)\]]|[^\\()\[\]:]+|:")
    brk = re.compile(r"\s*\bBREAK\b\s*", re.S)
    out, rounds, squares = [], [], []

    def scale(start, factor):
        for item in out[start:]:
            item[1] *= factor

    for m in token.finditer(text):
        tok, w = m.group(0), m.group("weight")
        try:
            weight = float(w) if w is not None else None
        except ValueError:
            weight = None
        if tok.startswith("\\"):
            out.append([tok[1:], 1.0])
        elif tok in "([":
            (rounds if tok == "(" else squares).append(len(out))
        elif weight is not None and rounds:
            scale(rounds.pop(), weight)
        elif tok == ")" and rounds:
            scale(rounds.pop(), 1.1)
        elif tok == "]" and squares:
            scale(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(brk.split(tok)):
                out += [["BREAK", -1]] if i else []
                out.append([part, 1.0])
    for start in rounds:
        scale(start, 1.1)
    for start in squares:
        scale(start, 1 / 1.1)
    merged = [out[0]] if out else [["", 1.0]]
    for item in out[1:]:
        if item[1] == merged[-1][1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


def old_split_and(prompt):
    weight = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")
    parts = []
    for sub in re.split(r"\bAND\b", prompt):
        m = weight.search(sub)
        parts.append((m.group(1), float(m.group(2)) if m.group(2) is not None else 1.0))
    return parts


def old_raw_json_spans(line):
    """One scan per `Key: [` to the end of the line."""
    spans = []
    for key in ("Hashes", "Resources", "Civitai resources"):
        for m in re.finditer(rf"(?:^|,\s*){re.escape(key)}:\s*([\[{{])", line):
            start, depth, in_string, escape = m.start(1), 0, False, False
            for i in range(start, len(line)):
                ch = line[i]
                if in_string:
                    escape, in_string = (False, True) if escape else (ch == "\\", ch != '"')
                elif ch == '"':
                    in_string = True
                elif ch in "[]{}":
                    depth += 1 if ch in "[{" else -1
                    if depth == 0:
                        spans.append((start, i + 1, key))
                        break
    return sorted(spans)


def old_user_comment(xmp):
    m = re.search(r"<exif:UserComment>.*?<rdf:li[^>]*>(.*?)</rdf:li>", xmp, re.S)
    return m.group(1) if m else None


def _same(a, b) -> bool:
    return json.dumps(a) == json.dumps(b)  # an int -1 and a float -1.0 differ, as do 0.0 and -0.0


ATTENTION_TOKENS = st.sampled_from([*"()[]:\\ a1.,\n\t", "BREAK", " BREAK ", ":1.2)", ":0)", ":-1)", ":1e3)",
                                    ":.5.5)", "  ", "\u00a0", "(a", "[a"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(ATTENTION_TOKENS, max_size=60).map("".join))
def test_attention_equals_the_per_bracket_version(text):
    assert _same(parse_prompt_attention(text), old_attention(text))


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["(a", "[a", ")", "]", "(", "[", "a", ":1.1)", "BREAK", " "]), min_size=50,
                max_size=400).map("".join))
def test_attention_equals_the_per_bracket_version_on_deep_nestings(text):
    assert _same(parse_prompt_attention(text), old_attention(text))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([*" \t\n:1.+-aA,\u00a0\x1c\u0663", "AND", " AND ", ":1.2", " : ", "1.", ".5"]),
                max_size=30).map("".join))
def test_split_and_equals_the_regex(prompt):
    assert _same(split_and(prompt), old_split_and(prompt))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([*'[]{}"\\,: a1', "Hashes: {", ", Hashes: [", ", Resources: [",
                                 ", Civitai resources: [", '\\"', '"a"', "Steps: 1", ", Seed: 2"]),
                max_size=40).map("".join))
def test_raw_json_spans_equal_one_scan_per_key(line):
    assert _raw_json_spans(line) == old_raw_json_spans(line)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([*"<>:a1=. \n", "<lora:", "te=", "<a:"]), max_size=30).map("".join))
def test_extra_networks_equal_the_regex(prompt):
    text, nets = parse_extra_networks(prompt)
    assert text == re.sub(r"<(\w+):([^>]+)>", "", prompt)
    assert [n.tag for n in nets] == [m.group(0) for m in re.finditer(r"<(\w+):([^>]+)>", prompt)]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(["<exif:UserComment>", "<rdf:li", ">", "</rdf:li>", " x", "\n"]),
                max_size=12).map("".join))
def test_drawthings_comment_equals_the_regex(xmp):
    assert user_comment(xmp) == old_user_comment(xmp)


# --- linear on adversarial input ---

LONG = {**H.PROMPTS, "blanks": "a" + " " * H.N + "x", "escapes": "\\(" * (H.N // 2),
        "unclosed-alternation": "[a|" * (H.N // 3), "weights-unclosed": "(a:1.1" * (H.N // 6)}
LONG_INFOTEXTS = {
    "hashes": "a cat\n" + H.PARAMS + ", Hashes: {" * (H.N // 10),
    "resources": "a cat\n" + H.PARAMS + ", Civitai resources: [" * (H.N // 22),
    "deep": "a cat\n" + H.PARAMS + ", Hashes: " + "[" * H.N + "]" * H.N,
    "quotes": "a cat\n" + H.PARAMS + ", Hashes: {" + '"\\"' * (H.N // 3),
    "no-colon": "a cat\n" + "word " * (H.N // 5),
    "prompt": "(a" * (H.N // 4) + " AND " + " " * (H.N // 2) + "<a:" * 1000 + "\n" + H.PARAMS,
}


def _fast(call, *args) -> None:
    start = time.perf_counter()
    call(*args)
    assert time.perf_counter() - start < PARSE_SECONDS, call.__name__


@pytest.mark.parametrize("name", sorted(LONG))
def test_prompt_parsers_are_fast_on_long_adversarial_prompts(name):
    text = LONG[name]
    for call in (parse_prompt_attention, split_and, parse_extra_networks):
        _fast(call, text)
    _fast(prompt_schedule, text, 20)


@pytest.mark.parametrize("name", sorted(LONG_INFOTEXTS))
def test_infotext_parsers_are_fast_on_long_adversarial_infotexts(name):
    text = LONG_INFOTEXTS[name]
    for call in (split_infotext, parse_infotext):
        _fast(call, text)
    _fast(lambda t: read_text(t).to_infotext(), text)


def test_xmp_reader_is_fast_on_repeated_comments():
    _fast(user_comment, "<exif:UserComment><rdf:li x" * 50_000)
    _fast(user_comment, "<exif:UserComment>" + "<rdf:li>" * 50_000)


# --- fuzzing: only Sd1kitError escapes, each input in under 2 s ---

def _never_worse(call, *args):
    start = time.perf_counter()
    try:
        result = call(*args)
    except Sd1kitError:
        result = None
    assert time.perf_counter() - start < PARSE_SECONDS
    return result


def _seed_pictures(folder: Path) -> dict[str, bytes]:
    comment = b"UNICODE\0" + S.A1111_REAL.encode("utf-16-be")
    return {
        "png": S.png(folder / "a.png", {"parameters": S.A1111_REAL, "prompt": json.dumps(S.COMFY_GRAPH)},
                     {"prompt": "zTXt"}).read_bytes(),
        "stealth": S.stealth(folder / "s.png", S.A1111_REAL).read_bytes(),
        "jpeg": S.exif_picture(folder / "c.jpg", comment, "JPEG").read_bytes(),
        "webp": S.exif_picture(folder / "d.webp", comment, "WEBP").read_bytes(),
    }


MUTATION = st.tuples(st.sampled_from(["flip", "cut", "insert", "repeat"]), st.floats(0, 1), st.binary(max_size=12))


def _mutate(data: bytes, mutations) -> bytes:
    for kind, where, extra in mutations:
        at = int(where * len(data))
        if kind == "flip":
            data = data[:at] + extra + data[at + len(extra):]
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + extra + data[at:]
        else:
            data = data[:at] + data[at:at + 64] * 50 + data[at + 64:]
    return data


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_pictures(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp"])
def test_fuzzed_containers_raise_only_sd1kit_errors(kind, seeds, tmp_path):
    @settings(FUZZ, max_examples=120)
    @given(st.lists(MUTATION, min_size=1, max_size=4), st.booleans())
    def check(mutations, stealth):
        data = _mutate(seeds["stealth" if stealth and kind == "png" else kind], mutations)
        path = tmp_path / f"fuzz.{kind}"
        path.write_bytes(data)
        info = _never_worse(read_picture, path)
        if info is not None:
            info.as_json(), info.to_infotext(), _format_info(info)
        _never_worse(strip_picture, path, tmp_path / f"out.{kind}")

    check()


INFOTEXT_TOKENS = st.sampled_from([
    "a cat", ", ", ":", "\n", "Negative prompt:", "Steps: 20", "Sampler: Euler a", "Seed: -1", "Size: 512x512",
    "Model: x", "Hashes: {", "}", "Resources: [", "]", '"', "\\", "<lora:x:0.5>", "<lora:y:k>", "Lora hashes: ",
    '"x: 12ab"', "Version: v1.5.1", "Civitai resources: ", "[[", "{\"a\": ", "1e999", "AND", "(a:1.2)", "BREAK"])


@settings(FUZZ, max_examples=400)
@given(st.lists(INFOTEXT_TOKENS, max_size=40).map("".join))
def test_fuzzed_infotexts_raise_only_sd1kit_errors(text):
    info = _never_worse(read_text, text)
    if info is not None:
        info.as_json(), info.to_infotext(), _format_info(info)
    _never_worse(parse_infotext, text)


PROMPT_GRAMMAR = st.sampled_from([*"()[]{}:|,\\ a1.", "AND", "BREAK", "<lora:a:1>", "\n"])


@settings(FUZZ, max_examples=600)
@given(st.lists(PROMPT_GRAMMAR, max_size=80).map("".join), st.integers(1, 30))
def test_fuzzed_prompts_raise_only_sd1kit_errors(prompt, steps):
    for call, args in ((parse_prompt_attention, (prompt,)), (split_and, (prompt,)), (parse_extra_networks, (prompt,)),
                       (prompt_schedule, (prompt, steps)), (prompt_schedule, (prompt, steps, steps + 5))):
        _never_worse(call, *args)


ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                   lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                   max_leaves=10)
COMFY_KEYS = ["seed", "steps", "cfg", "text", "model", "positive", "negative", "latent_image", "lora_name",
              "strength_model", "strength_clip", "ckpt_name", "width", "height", "sampler_name", "stop_at_clip_layer"]
COMFY_NODE = st.fixed_dictionaries({
    "class_type": st.sampled_from(["KSampler", "CLIPTextEncode", "LoraLoader", "CheckpointLoaderSimple",
                                   "EmptyLatentImage", "CLIPSetLastLayer", "ModelSamplingDiscrete"]) | ANY,
    "inputs": st.dictionaries(st.sampled_from(COMFY_KEYS),
                              ANY | st.tuples(st.sampled_from(["1", "2", "3", 1, "x"]), st.integers(0, 2)).map(list),
                              max_size=8) | ANY})


def _with(template: dict, values) -> st.SearchStrategy:
    """`template` with each of its values replaced, or not, by anything."""
    return st.fixed_dictionaries({k: st.just(v) | values for k, v in template.items()})


JSON_PICTURES = {
    "comfyui": st.dictionaries(st.sampled_from(["1", "2", "3", "4", "5"]), COMFY_NODE | ANY, max_size=5)
        .map(lambda g: {"prompt": json.dumps(g)}),
    "invokeai": _with(S.INVOKE_V3, ANY | st.lists(st.fixed_dictionaries({"lora": ANY, "weight": ANY}), max_size=2))
        .map(lambda m: {"invokeai_metadata": json.dumps(m)}),
    "novelai": _with(S.NOVELAI_COMMENT, ANY).map(
        lambda c: {"Software": "NovelAI", "Description": "x", "Comment": json.dumps(c)}),
    "swarmui": _with(S.SWARM["sui_image_params"], ANY).map(
        lambda p: {"parameters": json.dumps({"sui_image_params": p, "sui_models": [{"param": "model", "hash": 5}]})}),
    "drawthings": _with(S.DRAWTHINGS, ANY | st.lists(st.fixed_dictionaries({"file": ANY, "weight": ANY}), max_size=2))
        .map(lambda d: {"XML:com.adobe.xmp": H.xmp_comment(d)}),
    "fooocus": _with(S.FOOOCUS, ANY).map(lambda d: {"parameters": json.dumps(d)}),
}


@pytest.mark.parametrize("tool", sorted(JSON_PICTURES))
def test_fuzzed_json_readers_raise_only_sd1kit_errors(tool):
    @settings(FUZZ, max_examples=150)
    @given(JSON_PICTURES[tool])
    def check(texts):
        info = _never_worse(read_found, Containers("fuzz.png", "PNG", (64, 64), "RGB", texts))
        info.as_json(), info.to_infotext(), _format_info(info)
        json.dumps(info.as_json())
        assert all(isinstance(v, str) for v in info.parameters.values())
        assert all(isinstance(lora.name, str) and (lora.weight is None or isinstance(lora.weight, float))
                   for lora in info.loras)

    check()


def test_deep_json_is_malformed_metadata_not_a_crash():
    for texts in ({"prompt": '{"1": ' + "[" * 100_000}, {"invokeai_metadata": '{"a":' * 100_000},
                  {"Software": "NovelAI", "Description": "x", "Comment": "[" * 100_000}):
        info = read_found(Containers("x.png", texts=texts))
        assert any("malformed" in w for w in info.warnings), info.warnings


def test_stealth_gzip_is_inflated_against_the_budget(tmp_path):
    payload = gzip.compress(b"\0" * (64 << 20))
    path = tmp_path / "bomb.png"
    path.write_bytes(H.stealth_png(payload, (1024, 1024)))
    with pytest.raises(Sd1kitError, match="16 MiB"):
        read_picture(path)
    small = tmp_path / "ok.png"
    small.write_bytes(H.stealth_png(gzip.compress(S.A1111_REAL.encode()), (128, 128)))
    assert read_picture(small).prompt == "photo of a duck"


def test_stealth_is_read_up_to_the_pixel_cap(tmp_path):
    info = read_picture(H.stealth_at_cap(tmp_path))
    assert info.tool == "a1111" and info.prompt == "a cat" and "stealth" in info.raw
    huge = read_picture(H.huge_png(tmp_path))
    assert huge.tool is None and any("not looked for" in w for w in huge.warnings)


def test_refusals_in_info_leave_the_other_pictures_read(tmp_path, cli):
    good = S.png(tmp_path / "good.png", {"parameters": S.A1111_REAL})
    bomb = H.ztxt_total(tmp_path)
    r = cli("info", "--json", good, bomb)
    assert r.code == 2 and r.err.count("\n") == 1 and str(bomb) in r.err
    rows = r.json()
    assert rows[0]["tool"] == "a1111" and "16 MiB" in rows[1]["error"]


def test_exif_of_a_jpeg_too_large_for_pillow_is_read(tmp_path):
    path = H.jpeg_huge_declared(tmp_path)
    info = read_picture(path)
    assert info.tool == "a1111" and info.prompt == "a cat" and info.picture_size == (65500, 65500)
    webp = H.webp_huge_canvas(tmp_path)
    assert read_picture(webp).prompt == "a cat"
    with io.BytesIO(path.read_bytes()) as f, pytest.raises(Image.DecompressionBombError):
        Image.open(f)
