"""`sd1kit prompt`: the JSON other tools read, and bad input answered with a result or one clear line."""

from __future__ import annotations

import torch

from sd1kit.prompts.attention import parse_prompt_attention
from sd1kit.prompts.schedule import prompt_schedule


def test_json_fields(cli):
    r = cli("prompt", "--json", "--steps", "10", "--negative", "lowres, <lora:neg:0.5>",
            "masterpiece, (1girl:1.2), [cat:dog:0.5], <lora:hll:0.8:0.6>")
    assert r.code == 0, r.err
    out = r.json()
    assert [[e["until_step"], e["text"]] for e in out["schedule"]] == \
        prompt_schedule("masterpiece, (1girl:1.2), [cat:dog:0.5], ", 10)
    for entry in out["schedule"]:
        assert entry["attention"] == parse_prompt_attention(entry["text"])
        assert all(len(chunk) == 77 for chunk in entry["chunks"])
        assert entry["chunks"][0][0] == [49406, 1.0]
    assert out["extra_networks"] == [{"kind": "lora", "name": "hll", "multipliers": {"te": 0.8, "unet": 0.6, "dyn": None}}]
    assert out["negative"]["extra_networks"][0]["name"] == "neg" and out["embeddings"] == []


def test_break_in_attention_json(cli):
    out = cli("prompt", "--json", "a BREAK b").json()
    assert out["schedule"][0]["attention"] == [["a", 1.0], ["BREAK", -1], ["b", 1.0]]
    assert len(out["schedule"][0]["chunks"]) == 2


def test_composable_and(cli):
    out = cli("prompt", "--json", "a cat AND a dog :1.5").json()
    assert [(c["text"], c["weight"]) for c in out["composable"]] == [("a cat", 1.0), (" a dog", 1.5)]


def test_embeddings_reported_with_hash(cli, tmp_path):
    torch.save({"string_to_param": {"*": torch.randn(4, 768)}}, tmp_path / "easynegative.pt")
    out = cli("prompt", "--json", "--embeddings", tmp_path, "easynegative, dog").json()
    assert out["embeddings"][0]["name"] == "easynegative" and len(out["embeddings"][0]["hash"]) == 12
    assert out["token_count"] == 4 + 2


def test_unknown_lora_is_a_warning(cli, tmp_path):
    (tmp_path / "known.safetensors").write_bytes(b"")
    r = cli("prompt", "--lora-dir", tmp_path, "<lora:known:1> <lora:missing:1>")
    assert r.code == 0 and "no LoRA named 'missing'" in r.err and "'known'" not in r.err


def test_hostile_prompts_never_raise(cli, tmp_path):
    for text in ["((((([[[[unbalanced", "a\x00b\x00", " ".join(["dog"] * 10_000), "[a|b:c:1e999]", "\\", "(a:1.2.3)"]:
        r = cli("prompt", "--json", "--steps", "3", text)
        assert r.code == 0 and "Traceback" not in r.err, text[:40]


def test_invalid_utf8_file_is_one_line(cli, tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_bytes(b"good \xff\xfe bad")
    r = cli("prompt", "--file", path)
    assert r.code != 0 and r.err.count("\n") == 1 and "not valid UTF-8" in r.err and str(path) in r.err


def test_human_output(cli):
    r = cli("prompt", "masterpiece, (cat:1.3)", "--steps", "4")
    assert r.code == 0 and "cat</w>*1.3" in r.out


def test_parsing_layer_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from sd1kit.prompts.describe import describe_prompt; "
            "from sd1kit.models.tokenizer import clip_tokenizer; "
            "describe_prompt('a [b:c:2] (d:1.2) <lora:x:1>', 4, clip_tokenizer()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
