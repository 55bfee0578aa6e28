"""Positionals after options, in every command: `sd1kit qr URL --controlnet F --model M "a castle"`."""

from __future__ import annotations

import pytest

from sd1kit.cli import build_parser

TEXT = "https://example.com/sd1kit?q=1"


@pytest.mark.parametrize("argv", [("qr", "--code-only", "--out", "{out}", TEXT),
                                  ("qr", TEXT, "--code-only", "--out", "{out}"),
                                  ("qr", "--code-only", TEXT, "--out", "{out}")],
                         ids=["text-last", "text-first", "text-between"])
def test_qr_code_only_text_anywhere(argv, cli, tmp_path):
    r = cli(*(a.format(out=tmp_path / "code") for a in argv))
    assert r.code == 0, r.err
    assert "scans: yes" in r.out and (tmp_path / "code" / "qr-code.png").is_file()


def test_qr_prompt_after_options_reaches_loading(cli, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("SD1KIT_HOME", str(tmp_path / "home"))
    missing = tmp_path / "no-such-monster.safetensors"
    r = cli("qr", TEXT, "--controlnet", missing, "--model", tiny_models["sd15"], "a castle",
            "--size", "64x64", "--steps", "1", "--out", tmp_path / "art", "--quiet")
    assert r.code == 2
    last = r.err.strip().splitlines()[-1]
    assert "no-such-monster.safetensors" in last and "unrecognized arguments" not in r.err, r.err
    assert not (tmp_path / "art").exists()


def test_generate_prompt_between_options(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("generate", "--steps", "1", "--size", "64x64", "--out", out, "red circle, blue background", "--quiet")
    assert r.code == 0, r.err
    pictures = list(out.glob("*.png"))
    assert len(pictures) == 1 and "red circle" in pictures[0].name


def test_prompt_text_after_options(cli):
    r = cli("prompt", "--steps", "10", "a [b:c:5]")
    assert r.code == 0, r.err
    assert "until step 5: 'a b'" in r.out and "until step 10: 'a c'" in r.out


def test_inspect_options_first(cli, tiny_models):
    r = cli("inspect", "--json", "--no-hash", tiny_models["sd15"])
    assert r.code == 0, r.err
    assert [entry["path"] for entry in r.json()] == [str(tiny_models["sd15"])]


@pytest.mark.parametrize("argv, expected", [  # positionals split by options (merge, info, inspect failed before)
    ("lora bake m.safetensors --out o.safetensors a:0.5 b", {"lora_command": "bake", "out": "o.safetensors",
                                                           "model": "m.safetensors", "adapters": ["a:0.5", "b"]}),
    ("lora extract base --rank 8 tuned --out o", {"lora_command": "extract", "base": "base", "tuned": "tuned",
                                                  "rank": 8}),
    ("lora check m --json a", {"lora_command": "check", "json": True, "model": "m", "adapters": ["a"]}),
    ("models scan --json folder", {"models_command": "scan", "json": True, "folder": "folder"}),
    ("models fingerprint --json m --against a b", {"models_command": "fingerprint", "model": "m",
                                                   "against": ["a", "b"]}),
    ("dev tiny-model --layout nai out.ckpt", {"dev_command": "tiny-model", "layout": "nai", "output": "out.ckpt"}),
    ("merge a --alpha 0.3 b --out o", {"models": ["a", "b"], "alpha": 0.3, "out": "o"}),
    ("convert in.ckpt --dtype fp16 out.safetensors", {"input": "in.ckpt", "output": "out.safetensors"}),
    ("info a.png --json b.png", {"pictures": ["a.png", "b.png"], "json": True}),
    ("inspect a --no-hash b", {"paths": ["a", "b"], "no_hash": True}),
])
def test_nested_commands_parse_intermixed(argv, expected):
    args = vars(build_parser().parse_args(argv.split()))
    assert {k: args[k] for k in expected} == expected


def test_unknown_option_still_refused(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["qr", TEXT, "--bogus", "a castle"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["qr", "--help"], ["models", "scan", "--help"], ["lora", "bake", "-h"]])
def test_help_still_works(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: sd1kit")
