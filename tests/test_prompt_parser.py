"""The A1111 prompt language: schedules and attention exactly as A1111's prompt_parser.py (its doctests),
extra networks, AND, and property tests that no input raises."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given, settings, strategies as st

from sd1kit.prompts.attention import format_attention, normalize_attention, parse_prompt_attention
from sd1kit.prompts.compose import split_and
from sd1kit.prompts.extra_networks import parse_extra_networks
from sd1kit.prompts.schedule import parse_schedule_tree, prompt_schedule, serialize

VECTORS = json.loads((Path(__file__).parents[2] / "shared" / "testdata" / "a1111-prompt-parser-doctests.json").read_text()) \
    if (Path(__file__).parents[2] / "shared" / "testdata").is_dir() else None
DOCTESTS = json.loads((Path(__file__).parent / "fixtures" / "a1111_prompt_parser_doctests.json").read_text())

# One doctest predates alternation: since `|` joined the grammar (A1111 1.1+), A1111's own lark grammar (lark 1.1.2,
# the version A1111 pins, and the current one) rejects this prompt, so A1111 uses it unchanged for every step.
# sd1kit follows what A1111 does, not the stale docstring.
STALE = {"a [{b|d{:.5] c": [[10, "a [{b|d{:.5] c"]]}


def test_fixture_is_the_shared_vectors():
    if VECTORS is None:
        pytest.skip("shared/ not beside the repository")
    assert DOCTESTS == VECTORS


@pytest.mark.parametrize("case", DOCTESTS["schedules"] + [DOCTESTS["schedules_comment_example"]],
                         ids=lambda c: f"{c['input']}|{c['args']['hires_steps']}")
def test_schedule_doctests(case):
    a = case["args"]
    got = prompt_schedule(case["input"], a["base_steps"], a["hires_steps"], a["use_old_scheduling"])
    assert got == STALE.get(case["input"], case["expected"])


@pytest.mark.parametrize("case", DOCTESTS["attention"], ids=lambda c: c["input"])
def test_attention_doctests(case):
    assert parse_prompt_attention(case["input"]) == case["expected"]


@pytest.mark.parametrize("prompt, expected", [
    ("a BREAK b", [["a", 1.0], ["BREAK", -1], ["b", 1.0]]),
    ("BREAK", [["", 1.0], ["BREAK", -1], ["", 1.0]]),
    ("aBREAK b", [["aBREAK b", 1.0]]),
    ("\\\\", [["\\", 1.0]]),
    ("a\\b", [["ab", 1.0]]),  # a lone backslash is dropped
    ("(a:1.2.3)", [["a:1.2.3)", 1.1]]),  # an unreadable weight is text (A1111 raises here)
    ("(a: 0.5 )", [["a", 0.5]]),
    ("[[a]]", [["a", 1 / 1.1 / 1.1]]),
    ("(a)]", [["a", 1.1], ["]", 1.0]]),
    ("", [["", 1.0]]),
])
def test_attention_edge_cases(prompt, expected):
    assert parse_prompt_attention(prompt) == expected


def test_old_scheduling_rule():
    assert prompt_schedule("a [b:.5] c", 10, hires_steps=20, use_old_scheduling=True) == [[5, "a  c"], [10, "a b c"]]
    assert prompt_schedule("a [b:12] c", 10, hires_steps=20) == [[2, "a  c"], [20, "a b c"]]


def test_alternation_nested_in_editing():
    assert prompt_schedule("[[a|b]:c:2]", 4) == [[1, "a"], [2, "b"], [3, "c"], [4, "c"]]


def test_huge_numbers_and_deep_nesting_do_not_raise():
    assert prompt_schedule("a [b:1e999]", 10) == [[10, "a "]]
    deep = "(" * 5000 + "[a:1]" + ")" * 5000
    assert prompt_schedule(deep, 3)[-1][0] == 3


def test_extra_networks_are_removed_and_structured():
    text, nets = parse_extra_networks("1girl, <lora:hll6.3-fluff-a9:0.8>, <lyco:style:1:0.5:dyn=8>, "
                                      "<lora:x:te=0.2:unet=0.7>, <hypernet:aini:0.6>, <foo:bar>")
    assert text == "1girl, , , , , "
    got = [n.as_json() for n in nets]
    assert got[0] == {"kind": "lora", "name": "hll6.3-fluff-a9", "multipliers": {"te": 0.8, "unet": 0.8, "dyn": None}}
    assert got[1]["multipliers"] == {"te": 1.0, "unet": 0.5, "dyn": 8}
    assert got[2]["multipliers"] == {"te": 0.2, "unet": 0.7, "dyn": None}
    assert got[3] == {"kind": "hypernet", "name": "aini", "multipliers": {"weight": 0.6}}
    assert nets[4].problems == ["unknown extra network type 'foo'"]


def test_bad_multiplier_is_a_problem_not_an_exception():
    _, nets = parse_extra_networks("<lora:a:strong>")
    assert nets[0].multipliers["te"] == 1.0 and "not a number" in nets[0].problems[0]


def test_and_weights():
    assert split_and("a cat AND a dog :1.2 AND bird: -0.5") == [("a cat", 1.0), (" a dog", 1.2), (" bird", -0.5)]
    assert split_and("BAND members") == [("BAND members", 1.0)]


PROMPT_CHARS = st.sampled_from(list("ab ()[]:|\\,.05") + ["BREAK", "AND", " 1.2", "<lora:x:1>", "\n", "\x00", "é", "🐱"])
prompt_text = st.lists(PROMPT_CHARS, max_size=40).map("".join) | st.text(max_size=80)


@settings(max_examples=300, deadline=None)
@given(prompt_text, st.integers(1, 40))
def test_nothing_raises(prompt, steps):
    schedule = prompt_schedule(prompt, steps)
    assert schedule[-1][0] == steps and all(1 <= s <= steps for s, _ in schedule)
    for _, text in schedule:
        pairs = parse_prompt_attention(text)
        assert pairs and all(isinstance(w, float) or w == -1 for _, w in pairs)
    parse_extra_networks(prompt)
    split_and(prompt)


@settings(max_examples=300, deadline=None)
@given(prompt_text)
def test_attention_parse_serialise_parse_is_stable(prompt):
    pairs = parse_prompt_attention(prompt)
    assume(all(math.isfinite(w) for _, w in pairs))
    assert normalize_attention(parse_prompt_attention(format_attention(pairs))) == normalize_attention(pairs)


@settings(max_examples=300, deadline=None)
@given(st.lists(PROMPT_CHARS, max_size=40).map(lambda cs: "[" + "".join(cs)), st.integers(1, 30))
def test_schedule_parse_serialise_parse_is_stable(prompt, steps):
    nodes = parse_schedule_tree(prompt)
    if nodes is None:  # rejected by the grammar: used as it is, nothing to serialise
        assert prompt_schedule(prompt, steps) == [[steps, prompt]]
        return
    assert prompt_schedule(serialize(nodes), steps) == prompt_schedule(prompt, steps)
