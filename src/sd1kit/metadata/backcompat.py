"""The compatibility switches A1111 turns on when parameters are pasted from a picture an older A1111 wrote.

A1111 reads the infotext's `Version:` field and, for versions before a behaviour changed, sets the old behaviour
back on (`modules/infotext_versions.py`, `backcompat`, run at the end of `modules/infotext_utils.py`
`parse_generation_parameters`). The rules, as of A1111 1.10:

- before 1.6.0, when the prompt has a `[`: "Old prompt editing timelines" (setting `use_old_scheduling`; in
  sd1kit `prompts.schedule.prompt_schedule(..., use_old_scheduling=True)`);
- before 1.6.0, when the sampler is DDIM or PLMS: "Pad conds v0" (`pad_cond_uncond_v0`; in sd1kit
  `prompts.encode.pad_cond_uncond_v0`);
- before 1.7.0-225 (the commit that kept alphas_cumprod in float32): "Downcast alphas_cumprod"
  (`use_downcasted_alpha_bar`; in sd1kit `sampling.schedules.sd1_alphas_cumprod(downcast=True)`);
- before 1.8.0 with a refiner: "Refiner switch by sampling steps". sd1kit has no refiner, so it is not reported.

Versions are read as A1111 reads them: anything after a second `-` is dropped ("v1.7.0-225-g1234abc" becomes
"v1.7.0-225"), and the rest must be a PEP 440 version ("v1.7.0-225" is 1.7.0.post225, "1.6.0-RC" is 1.6.0rc0).
A version that is not one ("sd1kit 0.1.0", "ComfyUI", Forge's "f2.0.1v1.10.1-previous-...") turns nothing on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# sd1kit's switch names -> the infotext keys A1111 writes and reads for them
INFOTEXT_KEYS = {
    "old_prompt_editing": "Old prompt editing timelines",
    "pad_conds_v0": "Pad conds v0",
    "downcast_alphas_cumprod": "Downcast alphas_cumprod",
}
# the same switches as A1111 setting names (`modules/shared_options.py`), for reference
A1111_SETTINGS = {
    "old_prompt_editing": "use_old_scheduling",
    "pad_conds_v0": "pad_cond_uncond_v0",
    "downcast_alphas_cumprod": "use_downcasted_alpha_bar",
}

# PEP 440's version grammar (the public specification), case-insensitive, surrounding blanks allowed
_PEP440 = re.compile(r"""
    ^\s* v?
    (?:(?P<epoch>\d+)!)?
    (?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>\d+)?)?
    (?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$""", re.VERBOSE | re.IGNORECASE)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_GIT_DESCRIBE_TAIL = re.compile(r"([^-]+-[^-]+)-.*")  # A1111 keeps what is before a second "-"


@dataclass(frozen=True, order=True)
class Version:
    """A PEP 440 version ordered as the `packaging` library orders it (what A1111 compares with)."""

    key: tuple
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text


def _version_key(m: re.Match) -> tuple:
    release = [int(p) for p in m["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:  # 1.6 == 1.6.0
        release.pop()
    post_n = m["post_n1"] or m["post_n2"]
    has_post = m["post_n1"] is not None or m["post_l"] is not None
    has_dev = m["dev_l"] is not None
    if m["pre_l"] is not None:
        pre = (1, _PRE_RANK[m["pre_l"].lower()], int(m["pre_n"] or 0))
    elif has_dev and not has_post:
        pre = (0,)  # 1.0.dev0 comes before 1.0a0
    else:
        pre = (2,)
    post = (1, int(post_n or 0)) if has_post else (0,)
    dev = (0, int(m["dev_n"] or 0)) if has_dev else (1,)
    local = (0,) if m["local"] is None else (1, tuple(
        (1, int(p), "") if p.isdigit() else (0, 0, p.lower()) for p in re.split(r"[-_.]", m["local"])))
    return int(m["epoch"] or 0), tuple(release), pre, post, dev, local


def parse_pep440(text: str) -> Version | None:
    """A PEP 440 version ("1.6.0", "v1.7.0-225" = 1.7.0.post225, "1.6.0-RC" = 1.6.0rc0), or None."""
    m = _PEP440.match(text)
    return Version(_version_key(m), text) if m else None


def parse_version(text: str | None) -> Version | None:
    """The version of an infotext's `Version:` field as A1111 reads it (`infotext_versions.parse_version`):
    a git-describe tail after a second "-" dropped, then PEP 440; None for anything else."""
    if text is None:
        return None
    text = str(text)
    m = _GIT_DESCRIBE_TAIL.match(text)
    return parse_pep440(m.group(1) if m else text)


V160 = parse_pep440("1.6.0")
V170_TSNR = parse_pep440("v1.7.0-225")


def _explicit(value) -> bool:
    """A pasted setting's value as A1111 casts it for a bool setting (`Options.cast_value`): the text "False" is
    false, anything else is what bool() makes of it."""
    return False if value == "False" else bool(value)


def backcompat_switches(fields: dict) -> dict[str, str]:
    """The switches A1111 would turn on when pasting `fields` (as `metadata.infotext.parse_infotext` returns
    them): switch name (a key of INFOTEXT_KEYS) -> why, e.g. "A1111 v1.5.1 < 1.6.0 and the prompt edits".

    A key the infotext carries itself ("Old prompt editing timelines: True") decides its switch whatever the
    version says ("False" turns it off; A1111 never writes that, and its own back-compat would override it).
    """
    out: dict[str, str] = {}
    decided = set()
    for switch, key in INFOTEXT_KEYS.items():
        if key in fields and fields[key] is not None:
            decided.add(switch)
            if _explicit(fields[key]):
                out[switch] = f'the infotext says "{key}: {fields[key]}"'
    ver = parse_version(fields.get("Version"))
    if ver is None:
        return out
    label = f"A1111 {ver}"
    prompt = fields.get("Prompt") or ""
    sampler = fields.get("Sampler") or ""
    rules = {
        "old_prompt_editing": (ver < V160 and "[" in prompt,
                               f"{label} < 1.6.0 and the prompt edits ('[' in it)"),
        "pad_conds_v0": (ver < V160 and sampler in ("DDIM", "PLMS"),
                         f"{label} < 1.6.0 and sampler {sampler}"),
        "downcast_alphas_cumprod": (ver < V170_TSNR,
                                    f"{label} < 1.7.0-225 (float16 alphas_cumprod)"),
    }
    for switch, (applies, reason) in rules.items():
        if applies and switch not in decided:
            out[switch] = reason
    return out
