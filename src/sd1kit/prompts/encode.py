"""Text conditioning as A1111 computes it: chunks encoded separately and concatenated, clip skip through the
final layer norm, embedding vectors in place of their names' tokens, emphasis with mean restoration."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sd1kit.errors import Sd1kitError
from sd1kit.models.build import clip_module_prefix
from sd1kit.prompts.chunks import EMPHASIS_MODES, Chunk, build_chunks
from sd1kit.prompts.embeddings import EmbeddingDatabase
from sd1kit.prompts.schedule import prompt_schedule


@dataclass
class PromptEncoder:
    """Encodes prompt texts with a CLIPTextModel; results are cached per distinct text."""

    text_encoder: torch.nn.Module
    tokenizer: object
    embeddings: EmbeddingDatabase | None = None
    clip_skip: int = 1
    emphasis: str = "original"
    comma_backtrack: int = 20
    _cache: dict[str, torch.Tensor] = field(default_factory=dict)
    calls: int = 0  # chunks actually run through the text encoder (for tests and stats)
    used_embeddings: set = field(default_factory=set)  # names of embeddings found in encoded texts

    def __post_init__(self):
        layers = self.text_encoder.config.num_hidden_layers
        if not 1 <= self.clip_skip <= layers:
            raise Sd1kitError("clip skip", f"must be between 1 and {layers}, not {self.clip_skip}")
        if self.emphasis not in EMPHASIS_MODES:
            raise Sd1kitError("emphasis", f"must be one of {', '.join(EMPHASIS_MODES)}, not {self.emphasis!r}")
        prefix = clip_module_prefix(self.text_encoder)
        self._token_embedding = self.text_encoder.get_submodule(prefix + "embeddings.token_embedding")
        self._final_norm = self.text_encoder.get_submodule(prefix + "final_layer_norm")

    def chunks(self, text: str) -> list[Chunk]:
        return build_chunks(text, self.tokenizer, self.embeddings, self.emphasis, self.comma_backtrack)[0]

    def encode(self, text: str) -> torch.Tensor:
        """[1, 77 * chunks, width] conditioning of one prompt text (no scheduling syntax left in it)."""
        if text not in self._cache:
            chunks = self.chunks(text)
            self.used_embeddings.update(fix.name for chunk in chunks for fix in chunk.fixes)
            self._cache[text] = torch.cat([self.encode_chunk(c) for c in chunks], dim=1)
        return self._cache[text]

    @torch.no_grad()
    def encode_chunk(self, chunk: Chunk) -> torch.Tensor:
        self.calls += 1
        device = next(self.text_encoder.parameters()).device
        ids = torch.tensor([chunk.tokens], device=device)
        hook = self._token_embedding.register_forward_hook(self._fix_hook(chunk)) if chunk.fixes else None
        try:
            out = self.text_encoder(input_ids=ids, output_hidden_states=self.clip_skip > 1)
        finally:
            if hook is not None:
                hook.remove()
        z = out.last_hidden_state if self.clip_skip == 1 else self._final_norm(out.hidden_states[-self.clip_skip])
        if self.emphasis == "none" or all(w == 1.0 for w in chunk.weights):
            return z  # what A1111's multiply-and-restore gives exactly when every weight is 1
        weights = torch.tensor(chunk.weights, device=z.device, dtype=z.dtype)[None, :, None]
        mean = z.mean()
        z = z * weights
        return z * (mean / z.mean()) if self.emphasis == "original" else z

    def _fix_hook(self, chunk: Chunk):
        def replace(_module, _inputs, output):
            output = output.clone()
            for fix in chunk.fixes:
                vec = self.embeddings.embeddings[fix.name].vec.to(output.device, output.dtype)
                start = fix.offset + 1  # the chunk's BOS comes first
                n = min(vec.shape[0], output.shape[1] - start - 1)
                output[0, start:start + n] = vec[:n]
            return output
        return replace

    def encode_schedule(self, prompt: str, steps: int, hires_steps: int | None = None,
                        use_old_scheduling: bool = False) -> list[tuple[int, torch.Tensor]]:
        """[(until_step, conditioning), ...]: one encoding per distinct text of the schedule. use_old_scheduling:
        A1111's "Old prompt editing timelines" (before 1.6.0), see `prompt_schedule`."""
        return [(until, self.encode(text))
                for until, text in prompt_schedule(prompt, steps, hires_steps, use_old_scheduling)]


def pad_to_same_length(cond: torch.Tensor, uncond: torch.Tensor, empty: torch.Tensor):
    """A1111's "Pad prompt/negative prompt to be same length" (`pad_cond_uncond`): the shorter one gets
    encodings of the empty prompt appended, chunk by chunk. A1111's default runs the two unpadded instead."""
    def pad(t, chunks):
        return torch.cat([t, empty.repeat(t.shape[0], chunks, 1)], dim=1) if chunks > 0 else t
    diff = (cond.shape[1] - uncond.shape[1]) // empty.shape[1]
    return pad(cond, -diff), pad(uncond, diff)


def pad_by_last_vector(t: torch.Tensor, tokens: int) -> torch.Tensor:
    """[batch, n, dim] conditioning made `tokens` long: its last token vector repeated, or cut after `tokens`."""
    n = t.shape[1]
    if n >= tokens:
        return t[:, :tokens]
    return torch.cat([t, t[:, -1:].expand(-1, tokens - n, -1)], dim=1)


def pad_cond_uncond_v0(cond: torch.Tensor, uncond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A1111's "Pad prompt/negative prompt (v0)" (infotext `Pad conds v0`; `CFGDenoiser.pad_cond_uncond_v0` in
    `modules/sd_samplers_cfg_denoiser.py`), what DDIM and PLMS did before 1.6.0: the negative conditioning is made
    as long as the prompt's, by repeating its last token vector or by cutting it off (a long negative prompt loses
    its tail). The prompt's conditioning is never changed. A1111 applies it, when on, wherever the two lengths
    differ, in place of `pad_to_same_length` (`cond` is then the prompt's conditioning batch, AND parts included).

    cond [batch, tokens, dim], uncond [batch', tokens', dim] -> (cond, uncond with tokens' = tokens).
    """
    if uncond.shape[1] == cond.shape[1]:
        return cond, uncond
    return cond, pad_by_last_vector(uncond, cond.shape[1])
