"""Encoding on a tiny CLIP of the real topology: clip skip, emphasis, embeddings, chunks, the cache."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from sd1kit.dev.tiny import TINY_TEXT_ENCODER, tiny_modules
from sd1kit.models.build import build_text_encoder, clip_module_prefix
from sd1kit.models.configs import TextEncoderConfig
from sd1kit.models.tokenizer import clip_tokenizer
from sd1kit.prompts.embeddings import load_embedding_dir
from sd1kit.prompts.encode import PromptEncoder, pad_to_same_length


@pytest.fixture(scope="module")
def te():
    return tiny_modules(seed=0).text_encoder  # non-trivial layer-norm biases, as in a trained model


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


def test_shapes_and_chunk_concatenation(te, tok):
    enc = PromptEncoder(te, tok)
    assert enc.encode("dog").shape == (1, 77, 32)
    assert enc.encode(" ".join(["dog"] * 100)).shape == (1, 154, 32)


def test_clip_skip_equals_a_shorter_encoder_through_the_final_norm(te, tok):
    """Clip skip 2 = the output of layer -2 through the final layer norm: the same as a CLIP with one layer
    fewer, built separately from the same weights."""
    cfg = TINY_TEXT_ENCODER
    short = build_text_encoder(TextEncoderConfig(cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size,
                                                 cfg.num_layers - 1, cfg.max_positions))
    short.load_state_dict(te.state_dict(), strict=False)
    skipped = PromptEncoder(te, tok, clip_skip=2, emphasis="none").encode("a photo of a cat")
    reference = PromptEncoder(short.eval(), tok, emphasis="none").encode("a photo of a cat")
    torch.testing.assert_close(skipped, reference, rtol=0, atol=1e-6)
    assert not torch.allclose(skipped, PromptEncoder(te, tok, emphasis="none").encode("a photo of a cat"))


def test_emphasis_original_restores_the_mean(te, tok):
    plain = PromptEncoder(te, tok).encode("a cat")  # the same tokens, every weight 1
    original = PromptEncoder(te, tok).encode("a (cat:1.5)")
    no_norm = PromptEncoder(te, tok, emphasis="no-norm").encode("a (cat:1.5)")
    chunk = PromptEncoder(te, tok).chunks("a (cat:1.5)")[0]
    weights = torch.tensor(chunk.weights)[None, :, None]
    torch.testing.assert_close(no_norm, plain * weights)
    torch.testing.assert_close(original, plain * weights * (plain.mean() / (plain * weights).mean()))
    torch.testing.assert_close(original.mean(), plain.mean())
    literal = PromptEncoder(te, tok, emphasis="none")
    assert literal.chunks("a (cat:1.5)")[0].tokens[:4] != PromptEncoder(te, tok).chunks("a (cat:1.5)")[0].tokens[:4]


def test_embedding_vectors_replace_the_name(te, tok, tmp_path):
    """An embedding whose vectors are the token embeddings of "red cat" encodes exactly like "red cat"."""
    ids = tok("red cat", add_special_tokens=False)["input_ids"]
    table = te.get_submodule(clip_module_prefix(te) + "embeddings.token_embedding").weight.detach()
    torch.save({"string_to_param": {"*": table[ids].clone()}, "name": "zzqv"}, tmp_path / "zzqv.pt")
    db = load_embedding_dir(tmp_path, tok, width=32)
    enc = PromptEncoder(te, tok, embeddings=db, emphasis="none")
    torch.testing.assert_close(enc.encode("a zzqv"), enc.encode("a red cat"), rtol=0, atol=0)


def test_embedding_file_formats(te, tok, tmp_path):
    torch.save({"string_to_param": {"*": torch.randn(3, 32)}}, tmp_path / "pt_style.pt")
    save_file({"emb_params": torch.randn(2, 32)}, str(tmp_path / "st_style.safetensors"))
    torch.save({"<cat-toy>": torch.randn(32)}, tmp_path / "single.bin")  # diffusers' learned_embeds.bin
    save_file({"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}, str(tmp_path / "sdxl.safetensors"))
    torch.save({"string_to_param": {"*": torch.randn(2, 768)}}, tmp_path / "wide.pt")
    (tmp_path / "in_a_picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    db = load_embedding_dir(tmp_path, tok, width=32)
    assert {n: e.vectors for n, e in db.embeddings.items()} == {"pt_style": 3, "st_style": 2, "single": 1}
    why = {p.split("/")[-1]: w for p, w in db.skipped.items()}
    assert "SDXL" in why["sdxl.safetensors"] and "768" in why["wide.pt"] and "PNG" in why["in_a_picture.png"]


def test_unsafe_embedding_is_skipped_not_run(tok, tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    torch.save({"string_to_param": {"*": torch.randn(1, 32)}, "x": Evil()}, tmp_path / "evil.pt")
    db = load_embedding_dir(tmp_path, tok, width=32)
    assert "unsafe pickle" in db.skipped[str(tmp_path / "evil.pt")] and not (tmp_path / "pwned").exists()


def test_schedule_encodes_each_distinct_text_once(te, tok):
    enc = PromptEncoder(te, tok)
    conds = enc.encode_schedule("a [cat:dog:15]", 30)
    assert [u for u, _ in conds] == [15, 30] and enc.calls == 2
    enc.encode_schedule("a [cat:dog:15]", 30)
    assert enc.calls == 2


def test_pad_to_same_length(te, tok):
    enc = PromptEncoder(te, tok)
    cond, uncond = enc.encode(" ".join(["dog"] * 100)), enc.encode("blurry")
    empty = enc.encode("")
    c, u = pad_to_same_length(cond, uncond, empty)
    assert c.shape == u.shape == (1, 154, 32)
    assert torch.equal(u[:, 77:], empty) and torch.equal(c, cond)


def test_bad_settings_are_clear_errors(te, tok):
    from sd1kit.errors import Sd1kitError

    with pytest.raises(Sd1kitError, match="clip skip"):
        PromptEncoder(te, tok, clip_skip=5)
    with pytest.raises(Sd1kitError, match="emphasis"):
        PromptEncoder(te, tok, emphasis="loud")
