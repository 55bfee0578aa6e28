"""Benchmark: parsing and tokenising a 300-token A1111 prompt (target: under 2 ms).

Baseline measured in the same run: the bare fast-tokenizer call on the same text, the least any A1111-exact
tokenisation can cost. Prints a table; median of many runs after a warm-up.

    .venv/bin/python bench/prompt.py
"""

from __future__ import annotations

import os
import sys

# bench/inspect.py is named like the stdlib module: keep this folder off the import path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import statistics  # noqa: E402
import time  # noqa: E402

from sd1kit.models.tokenizer import clip_tokenizer  # noqa: E402
from sd1kit.prompts.attention import parse_prompt_attention  # noqa: E402
from sd1kit.prompts.chunks import build_chunks  # noqa: E402
from sd1kit.prompts.extra_networks import parse_extra_networks  # noqa: E402
from sd1kit.prompts.schedule import prompt_schedule  # noqa: E402

TAGS = ("masterpiece, best quality, (1girl:1.2), solo, long hair, looking at viewer, smile, [blurry], "
        "blue eyes, hatsune miku \\(cosplay\\), ((detailed eyes)), [red:blue:0.4] dress, outdoors, cherry blossoms, "
        "<lora:hll6.3-fluff-a9:0.8>, BREAK sky, clouds, (sunlight:1.1), depth of field, ")


def make_prompt(tokenizer, target: int = 300) -> str:
    text = ""
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < target:
        text += TAGS
    return text


def median_ms(fn, runs: int = 300) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def full(tokenizer, prompt: str) -> None:
    text, _networks = parse_extra_networks(prompt)
    for _until, step_text in prompt_schedule(text, 28):
        build_chunks(step_text, tokenizer)


def main() -> int:
    tok = clip_tokenizer()
    prompt = make_prompt(tok)
    n_tokens = len(tok(prompt, add_special_tokens=False)["input_ids"])
    text, _ = parse_extra_networks(prompt)
    schedule = prompt_schedule(text, 28)
    rows = [
        ("baseline: fast tokenizer, whole text", median_ms(lambda: tok(text, add_special_tokens=False))),
        ("extra networks", median_ms(lambda: parse_extra_networks(prompt))),
        ("schedule (28 steps)", median_ms(lambda: prompt_schedule(text, 28))),
        ("attention (one step's text)", median_ms(lambda: parse_prompt_attention(schedule[0][1]))),
        ("chunks incl. tokenising (one text)", median_ms(lambda: build_chunks(schedule[0][1], tok))),
        (f"parse + tokenise, all {len(schedule)} texts", median_ms(lambda: full(tok, prompt))),
    ]
    base = rows[0][1]
    print(f"\nprompt: {len(prompt)} characters, {n_tokens} CLIP tokens, {len(schedule)} distinct step texts\n")
    print(f"{'measure':42} {'ms':>8} {'ratio':>7}")
    for name, ms in rows:
        print(f"{name:42} {ms:8.3f} {ms / base:7.2f}")
    one_text = rows[1][1] + rows[2][1] + rows[4][1]
    verdict = "PASS" if one_text < 2.0 else "FAIL"
    print(f"\nparse + tokenise one {n_tokens}-token prompt (networks + schedule + chunks): {one_text:.3f} ms -> {verdict} "
          f"(target < 2 ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
