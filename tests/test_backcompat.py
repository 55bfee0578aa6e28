"""A1111's back-compat switches from an infotext's Version (`modules/infotext_versions.py`), the v0 padding of
the negative conditioning (`modules/sd_samplers_cfg_denoiser.py`) and the old prompt editing timelines."""

from __future__ import annotations

import pytest
import torch

from sd1kit.metadata.backcompat import INFOTEXT_KEYS, V160, V170_TSNR, backcompat_switches, parse_version
from sd1kit.metadata.infotext import parse_infotext
from sd1kit.prompts.encode import pad_by_last_vector, pad_cond_uncond_v0
from sd1kit.prompts.schedule import prompt_schedule

VERSIONS = ["1.6.0", "v1.5.1", "1.6.0-RC", "1.6.0-RC-28-gabc1234", "v1.7.0-225-g1234abc", "v1.7.0-224-g1234abc",
            "v1.7.0", "v1.7.0-226", "v1.10.1", "1.10.0-RC", "1.6", "v1.6.0-2-gabc", "V1.8.0", " v1.9.4 ",
            "1.5.2-115-g4d2f3e8", "1.7.0.rc1", "1.0.dev0", "1.0+local.7", "f2.0.1v1.10.1-previous-669-gdfdcbab6",
            "f0.0.17v1.8.0rc-latest-276-g29be1da7", "sd1kit 0.1.0", "ComfyUI", "", "Fooocus v2.5.0"]


def _packaging_parse(text):
    """A1111's parse_version, on the packaging library (a test-only reference)."""
    version = pytest.importorskip("packaging.version")
    import re

    m = re.match(r"([^-]+-[^-]+)-.*", text)
    try:
        return version.parse(m.group(1) if m else text)
    except version.InvalidVersion:
        return None


def test_versions_parse_and_order_as_packaging_does():
    ours = {t: parse_version(t) for t in VERSIONS}
    ref = {t: _packaging_parse(t) for t in VERSIONS}
    assert {t for t, v in ours.items() if v is None} == {t for t, v in ref.items() if v is None}
    valid = [t for t in VERSIONS if ref[t] is not None]
    for a in valid:
        for b in valid:
            assert (ours[a] < ours[b], ours[a] == ours[b]) == (ref[a] < ref[b], ref[a] == ref[b]), (a, b)
    assert parse_version("v1.7.0-225-g1234abc") == V170_TSNR and parse_version("1.6") == V160
    assert parse_version("1.6.0-RC") < V160 < parse_version("v1.6.0-2-gabc") < V170_TSNR
    assert parse_version(None) is None


def _switches(infotext: str) -> dict:
    return backcompat_switches(parse_infotext(infotext))


def test_old_versions_turn_the_switches_on():
    got = _switches("a [cat:dog:0.5] in a field\nNegative prompt: blurry\n"
                    "Steps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 512x512, Version: v1.5.1")
    assert set(got) == {"old_prompt_editing", "pad_conds_v0", "downcast_alphas_cumprod"}
    assert got["old_prompt_editing"].startswith("A1111 v1.5.1 < 1.6.0")
    assert "DDIM" in got["pad_conds_v0"] and "1.7.0-225" in got["downcast_alphas_cumprod"]


@pytest.mark.parametrize("version, prompt, sampler, expected", [
    ("v1.5.1", "plain prompt", "Euler a", {"downcast_alphas_cumprod"}),
    ("v1.5.1", "a [b:c:3]", "PLMS", {"old_prompt_editing", "pad_conds_v0", "downcast_alphas_cumprod"}),
    ("v1.5.1", "a (b:1.2)", "DDIM", {"pad_conds_v0", "downcast_alphas_cumprod"}),
    ("1.6.0-RC", "a [b:c:3]", "DDIM", {"old_prompt_editing", "pad_conds_v0", "downcast_alphas_cumprod"}),
    ("v1.6.0", "a [b:c:3]", "DDIM", {"downcast_alphas_cumprod"}),
    ("v1.7.0-224-g1234abc", "a [b:c:3]", "DDIM", {"downcast_alphas_cumprod"}),
    ("v1.7.0-225-g1234abc", "a [b:c:3]", "DDIM", set()),
    ("v1.10.1", "a [b:c:3]", "DDIM", set()),
    ("f2.0.1v1.10.1-previous-669-gdfdcbab6", "a [b:c:3]", "DDIM", set()),  # Forge: not a PEP 440 version
    ("sd1kit 0.1.0", "a [b:c:3]", "DDIM", set()),
    ("ComfyUI", "a [b:c:3]", "DDIM", set()),
    (None, "a [b:c:3]", "DDIM", set()),
])
def test_each_rule(version, prompt, sampler, expected):
    fields = {"Prompt": prompt, "Negative prompt": "", "Sampler": sampler}
    if version is not None:
        fields["Version"] = version
    assert set(backcompat_switches(fields)) == expected


def test_the_infotext_keys_win():
    new = "a cat\nSteps: 20, Sampler: Euler, Seed: 1, Old prompt editing timelines: True, Version: v1.10.1"
    assert _switches(new) == {"old_prompt_editing": 'the infotext says "Old prompt editing timelines: True"'}
    both = ("a [b:c:3]\nSteps: 20, Sampler: DDIM, Seed: 1, Pad conds v0: True, Downcast alphas_cumprod: False, "
            "Version: v1.5.1")
    got = _switches(both)
    assert set(got) == {"old_prompt_editing", "pad_conds_v0"} and got["pad_conds_v0"].startswith("the infotext")
    assert INFOTEXT_KEYS == {"old_prompt_editing": "Old prompt editing timelines", "pad_conds_v0": "Pad conds v0",
                             "downcast_alphas_cumprod": "Downcast alphas_cumprod"}


def test_pad_cond_uncond_v0_repeats_the_last_vector_or_cuts():
    cond = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    short = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3) + 100
    c, u = pad_cond_uncond_v0(cond, short)
    assert c is cond and u.shape == (2, 5, 3)
    assert torch.equal(u[:, :2], short) and torch.equal(u[:, 2:], short[:, 1:2].expand(2, 3, 3))
    long = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)
    c, u = pad_cond_uncond_v0(cond, long)
    assert c is cond and torch.equal(u, long[:, :5])  # the negative prompt's tail is lost
    same = torch.zeros(1, 5, 3)
    assert pad_cond_uncond_v0(cond, same)[1] is same
    assert torch.equal(pad_by_last_vector(short, 2), short)


def test_old_prompt_editing_timelines():
    """A1111 before 1.6.0: a `when` below 1 is a fraction of the steps, anything else a step number; the hires
    pass counts the base pass's steps. 1.6.0+: a number with a point is a fraction (hires: 1..2)."""
    assert prompt_schedule("a [b:1.5]", 10) == [[10, "a "]]
    assert prompt_schedule("a [b:1.5]", 10, use_old_scheduling=True) == [[1, "a "], [10, "a b"]]
    assert prompt_schedule("a [b:1.0] c", 10, 20) == [[20, "a b c"]]
    assert prompt_schedule("a [b:1.0] c", 10, 20, use_old_scheduling=True) == [[1, "a  c"], [10, "a b c"]]
    assert prompt_schedule("a [b:c:0.5]", 10, use_old_scheduling=True) == prompt_schedule("a [b:c:0.5]", 10)
