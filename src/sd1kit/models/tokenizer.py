"""The CLIP ViT-L/14 tokenizer, offline: vocabulary and merges built from the BPE file OpenAI published with
CLIP (MIT licence), which ships in sd1kit/data. Token ids equal openai/clip-vit-large-patch14's."""

from __future__ import annotations

import functools
import gzip
import re
from importlib import resources

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
BOS_ID, EOS_ID = 49406, 49407
MAX_LENGTH = 77  # one CLIP window: BOS + 75 + EOS
MAX_TOKENS = 1 << 30  # prompts are chunked by sd1kit, never truncated by the tokenizer (and no length warning)
NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2  # bytes, bytes + "</w>", and the two special tokens take the rest


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable-character table, in vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


@functools.lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    raw = resources.files("sd1kit.data").joinpath(BPE_FILE).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:1 + NUM_MERGES]]  # line 0 is a version comment
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


# Text that ftfy could change: anything outside printable ASCII, or an HTML entity.
_NEEDS_FIX = re.compile(r"[^\x20-\x7e\t\n\r]|&")


def fix_text(text: str) -> str:
    """ftfy's clean-up, which the CLIP tokenizer A1111 runs (transformers' slow CLIPTokenizer with ftfy, as
    OpenAI's own tokenizer) applies first: full-width forms, HTML entities, control characters, mojibake."""
    if not _NEEDS_FIX.search(text):
        return text
    import ftfy

    return ftfy.fix_text(text)


class ClipTokenizer:
    """transformers' fast CLIPTokenizer behind ftfy's clean-up: the token ids of A1111's CLIP tokenizer."""

    def __init__(self, fast):
        self.fast = fast
        self.vocab = fast.get_vocab()

    def __call__(self, text, **kwargs):
        texts = [fix_text(t) for t in text] if isinstance(text, list) else fix_text(text)
        return self.fast(texts, **kwargs)

    def convert_ids_to_tokens(self, ids):
        return self.fast.convert_ids_to_tokens(ids)


@functools.lru_cache(maxsize=1)
def clip_tokenizer() -> ClipTokenizer:
    """The CLIP ViT-L/14 tokenizer, built locally (no hub access)."""
    from transformers import CLIPTokenizer

    vocab, merges = vocab_and_merges()
    return ClipTokenizer(CLIPTokenizer(vocab=vocab, merges=merges, unk_token=EOS, bos_token=BOS, eos_token=EOS,
                                       pad_token=EOS, model_max_length=MAX_TOKENS))
