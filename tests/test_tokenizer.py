"""The offline CLIP tokenizer gives openai/clip-vit-large-patch14's token ids."""

from __future__ import annotations

from sd1kit.models.tokenizer import BOS_ID, EOS_ID, clip_tokenizer, vocab_and_merges

# ids as printed by transformers' CLIPTokenizer.from_pretrained("openai/clip-vit-large-patch14")
KNOWN = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "masterpiece, best quality, 1girl": [49406, 12066, 267, 949, 3027, 267, 272, 1611, 49407],
}


def test_vocabulary_shape():
    vocab, merges = vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == BOS_ID and vocab["<|endoftext|>"] == EOS_ID
    assert vocab["a</w>"] == 320 and vocab["!"] == 0


def test_known_ids():
    tok = clip_tokenizer()
    for text, ids in KNOWN.items():
        assert tok(text).input_ids == ids


def test_padding_to_77_with_end_token():
    tok = clip_tokenizer()
    ids = tok("a photo of a cat", padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77 and ids[7:] == [EOS_ID] * 70


def test_case_and_whitespace_are_normalised():
    tok = clip_tokenizer()
    assert tok("A  Photo of a CAT").input_ids == KNOWN["a photo of a cat"]
