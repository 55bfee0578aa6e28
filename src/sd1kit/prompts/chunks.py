"""Tokens and 75-token chunks exactly as A1111's `FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line` builds them:
emphasis weights per token, BREAK closing a chunk, the comma back-off, embeddings counted by their vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sd1kit.prompts.attention import BREAK, parse_prompt_attention

CHUNK_LENGTH = 75
BOS_ID, EOS_ID = 49406, 49407
COMMA_ID = 267  # ",</w>"
EMPHASIS_MODES = ("original", "no-norm", "none")


class EmbeddingLookup(Protocol):
    def find_at(self, tokens: list[int], position: int) -> tuple[str, int, int] | None:
        """(name, vector count, token count of the name) of an embedding whose name starts at `position`."""


@dataclass
class Fix:
    offset: int  # position in the chunk's 75 tokens (the BOS is not counted)
    name: str
    vectors: int


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)

    def pairs(self) -> list[list]:
        return [[t, w] for t, w in zip(self.tokens, self.weights)]


def tokenize_segments(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]


def build_chunks(text: str, tokenizer, embeddings: EmbeddingLookup | None = None, emphasis: str = "original",
                 comma_backtrack: int = 20) -> tuple[list[Chunk], int]:
    """Chunks of 77 tokens (BOS + 75 + EOS) with a weight per token, and the token count A1111 reports."""
    segments = parse_prompt_attention(text) if emphasis != "none" else [[text, 1.0]]
    tokenized = tokenize_segments(tokenizer, [t for t, _ in segments])
    chunks: list[Chunk] = []
    chunk = Chunk()
    count = 0
    last_comma = -1

    def close(last: bool = False) -> None:
        nonlocal chunk, count, last_comma
        count += len(chunk.tokens) if last else CHUNK_LENGTH
        pad = CHUNK_LENGTH - len(chunk.tokens)
        if pad > 0:
            chunk.tokens += [EOS_ID] * pad
            chunk.weights += [1.0] * pad
        chunk.tokens = [BOS_ID, *chunk.tokens, EOS_ID]
        chunk.weights = [1.0, *chunk.weights, 1.0]
        chunks.append(chunk)
        chunk, last_comma = Chunk(), -1

    for tokens, (segment, weight) in zip(tokenized, segments):
        if [segment, weight] == BREAK:
            close()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == COMMA_ID:
                last_comma = len(chunk.tokens)
            elif (comma_backtrack and len(chunk.tokens) == CHUNK_LENGTH and last_comma != -1
                  and len(chunk.tokens) - last_comma <= comma_backtrack):
                # move the words after the last comma into the next chunk, so a tag is not cut in two
                cut = last_comma + 1
                moved_tokens, moved_weights = chunk.tokens[cut:], chunk.weights[cut:]
                chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
                close()
                chunk.tokens, chunk.weights = moved_tokens, moved_weights
            if len(chunk.tokens) == CHUNK_LENGTH:
                close()
            found = embeddings.find_at(tokens, position) if embeddings is not None else None
            if found is None:
                chunk.tokens.append(token)
                chunk.weights.append(weight)
                position += 1
                continue
            name, vectors, name_tokens = found
            if len(chunk.tokens) + vectors > CHUNK_LENGTH:
                close()
            chunk.fixes.append(Fix(len(chunk.tokens), name, vectors))
            chunk.tokens += [0] * vectors
            chunk.weights += [weight] * vectors
            position += name_tokens
    if chunk.tokens or not chunks:
        close(last=True)
    return chunks, count
