"""Token-by-token decoding state: sampling, stop strings and incremental text.

Kept apart from the chat handler so that any decoding loop (one request, a static batch, or
a continuous batch in a server replica) shares the same per-sequence rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

REPLACEMENT = "\ufffd"  # what a half-decoded multi-byte character looks like


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """One token id from a row of logits: greedy at temperature 0, else nucleus sampling."""
    if params.temperature == 0:
        return int(logits.argmax())
    probs = (logits.float() / params.temperature).softmax(-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < params.top_p  # always keeps the best
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


class SequenceState:
    """One sequence being generated: its tokens, the text already streamed, why it ended."""

    def __init__(self, params: SamplingParams, tokenizer, end_token_ids: set[int]):
        self.params = params
        self.tokenizer = tokenizer
        self.end_token_ids = set() if params.ignore_eos else end_token_ids
        self.token_ids: list[int] = []
        self.generated = 0  # tokens sampled, the end-of-turn token included
        self.text = ""
        self.streamed = 0
        self.finish_reason: str | None = None
        self.generator = torch.Generator()
        self.generator.manual_seed(params.seed if params.seed is not None else torch.seed())

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def push(self, token_id: int) -> str:
        """Record one generated token; return the text that may now be streamed."""
        self.generated += 1
        if token_id in self.end_token_ids:
            self.finish_reason = "stop"
            return self._release()
        self.token_ids.append(token_id)
        self.text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        cut = min((i for i in (self.text.find(s) for s in self.params.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.params.max_tokens:
            self.finish_reason = "length"
        return self._release()

    def end(self, reason: str) -> str:
        """Stop from outside (context full); return whatever text was held back."""
        self.finish_reason = reason
        return self._release()

    def _release(self) -> str:
        """Text safe to stream: hold back a possible stop-string prefix or a split character."""
        ready = self.text
        if not self.finished:
            hold = max((len(s) - 1 for s in self.params.stop), default=0)
            ready = ready[: len(ready) - hold] if hold else ready
            ready = ready.rstrip(REPLACEMENT)
        delta = ready[self.streamed :]
        self.streamed = max(self.streamed, len(ready))
        return delta
