"""Tokens and chunks as A1111 builds them: hand-worked examples, the comma back-off, BREAK, embeddings."""

from __future__ import annotations

import pytest

from sd1kit.models.tokenizer import clip_tokenizer
from sd1kit.prompts.chunks import BOS_ID, COMMA_ID, EOS_ID, build_chunks
from sd1kit.prompts.embeddings import Embedding, EmbeddingDatabase

DOG, CAT = 1929, 2368  # "dog</w>", "cat</w>"


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


def test_vocabulary_facts(tok):
    assert tok("dog cat ,", add_special_tokens=False)["input_ids"] == [DOG, CAT, COMMA_ID]


def _body(chunk):
    """The 75 tokens between BOS and EOS, without the EOS padding."""
    assert chunk.tokens[0] == BOS_ID and chunk.tokens[-1] == EOS_ID and len(chunk.tokens) == 77
    body = chunk.tokens[1:-1]
    while body and body[-1] == EOS_ID:
        body = body[:-1]
    return body


def test_150_token_prompt_makes_two_full_chunks(tok):
    chunks, count = build_chunks(" ".join(["dog"] * 150), tok)
    assert count == 150 and len(chunks) == 2
    assert _body(chunks[0]) == [DOG] * 75 and _body(chunks[1]) == [DOG] * 75


def test_80_tokens_pad_the_second_chunk(tok):
    chunks, count = build_chunks(" ".join(["dog"] * 80), tok)
    assert count == 80 and [len(_body(c)) for c in chunks] == [75, 5]
    assert chunks[1].tokens[6:] == [EOS_ID] * 71 and chunks[1].weights == [1.0] * 77


def test_comma_backoff_moves_the_last_tag_to_the_next_chunk(tok):
    """70 x dog, a comma, 7 x cat. When the chunk fills at the 5th cat, the comma is 5 tokens back (<= 20):
    the 4 cats after it move to chunk 2, which then holds all 7 cats. A1111 counts the first chunk as 75."""
    chunks, count = build_chunks(" ".join(["dog"] * 70) + ", " + " ".join(["cat"] * 7), tok)
    assert _body(chunks[0]) == [DOG] * 70 + [COMMA_ID]
    assert _body(chunks[1]) == [CAT] * 7
    assert count == 82


def test_comma_too_far_back_does_not_move(tok):
    chunks, _ = build_chunks(" ".join(["dog"] * 50) + ", " + " ".join(["cat"] * 30), tok)
    assert _body(chunks[0]) == [DOG] * 50 + [COMMA_ID] + [CAT] * 24 and _body(chunks[1]) == [CAT] * 6
    chunks, _ = build_chunks(" ".join(["dog"] * 70) + ", " + " ".join(["cat"] * 7), tok, comma_backtrack=0)
    assert _body(chunks[0]) == [DOG] * 70 + [COMMA_ID] + [CAT] * 4


def test_break_closes_a_chunk(tok):
    chunks, count = build_chunks("dog BREAK cat", tok)
    assert [_body(c) for c in chunks] == [[DOG], [CAT]] and count == 76
    chunks, _ = build_chunks("(dog BREAK cat)", tok)  # inside brackets BREAK's weight is not -1: just a word
    assert len(chunks) == 1


def test_emphasis_weights_per_token(tok):
    chunks, _ = build_chunks("dog, (cat:1.3), [dog]", tok)
    body = chunks[0].tokens[1:5]
    assert body == [DOG, COMMA_ID, CAT, COMMA_ID]
    assert chunks[0].weights[1:6] == [1.0, 1.0, 1.3, 1.0, 1 / 1.1]
    assert build_chunks("(cat:1.3)", tok, emphasis="none")[0][0].weights == [1.0] * 77


def test_embedding_straddling_a_chunk_boundary_moves_whole(tok):
    db = EmbeddingDatabase()
    db.add(Embedding("badhandv4", None, 10), tok)
    name_tokens = len(tok("badhandv4", add_special_tokens=False)["input_ids"])
    assert name_tokens > 1
    chunks, count = build_chunks(" ".join(["dog"] * 70) + " (badhandv4:0.8) dog", tok, embeddings=db)
    assert _body(chunks[0]) == [DOG] * 70  # 70 + 10 > 75: the embedding starts chunk 2
    assert chunks[1].fixes[0].offset == 0 and chunks[1].fixes[0].vectors == 10
    assert _body(chunks[1]) == [0] * 10 + [DOG]
    assert chunks[1].weights[1:12] == [0.8] * 10 + [1.0]
    assert count == 75 + 11


def test_embedding_counts_its_vectors_not_its_name(tok):
    db = EmbeddingDatabase()
    db.add(Embedding("easynegative", None, 8), tok)
    chunks, count = build_chunks("easynegative, dog", tok, embeddings=db)
    assert count == 8 + 2 and _body(chunks[0]) == [0] * 8 + [COMMA_ID, DOG]


def test_longest_embedding_name_wins(tok):
    db = EmbeddingDatabase()
    db.add(Embedding("bad", None, 1), tok)
    db.add(Embedding("bad hands", None, 3), tok)
    chunks, _ = build_chunks("bad hands, bad", tok, embeddings=db)
    assert [(f.name, f.offset) for f in chunks[0].fixes] == [("bad hands", 0), ("bad", 4)]


def test_empty_prompt_is_one_empty_chunk(tok):
    chunks, count = build_chunks("", tok)
    assert count == 0 and chunks[0].tokens == [BOS_ID] + [EOS_ID] * 76
