"""Token-by-token decoding state: sampling, stop strings and incremental text.

Kept apart from the chat handler so that any decoding loop (one request, a static batch, or
a continuous batch in a server replica) shares the same per-sequence rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tuneserve.errors import TuneserveError
from tuneserve.tasks.chat import GREEDY_BELOW_TEMPERATURE

REPLACEMENT = "\ufffd"  # what a half-decoded multi-byte character looks like


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False


class NonFiniteLogits(TuneserveError):
    """The model scored the next token NaN or +inf: its numerics failed on this sequence.

    Sampling from such a row is meaningless (and ``multinomial`` raises on it), and
    replacing the values would stream text the model never chose, so the sequence ends
    with this error (a 500: the fault is the model's, not the request's).
    """


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """One token id from a row of logits: greedy at (near) temperature 0, else nucleus
    sampling. ``-inf`` logits (masked tokens) are fine; a NaN or ``+inf`` one is refused."""
    if not torch.isfinite(logits.max()):  # max propagates NaN; all -inf is refused too
        raise NonFiniteLogits(
            "the model produced non-finite next-token scores (NaN or infinity); "
            "generation stopped — this is a fault of the model version, not of the request",
            code="non_finite_logits",
        )
    if params.temperature < GREEDY_BELOW_TEMPERATURE:
        return int(logits.argmax())
    probs = (logits.float() / params.temperature).softmax(-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < params.top_p
        keep[0] = True  # the best token always stays: a top_p below float32's tiniest is 0
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
        self._window_start = 0  # incremental detokenization: decode a short window only
        self._decoded = 0  # tokens already turned into text
        self.finish_reason: str | None = None
        self.generator = torch.Generator()
        self.generator.manual_seed(params.seed if params.seed is not None else torch.seed())

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def advance(self, logits: torch.Tensor, context_full: bool) -> tuple[int, str]:
        """Sample, record the token, and end with 'length' when the context has no room left.

        The one decoding step every loop (static batch, continuous batch) shares.
        """
        token = sample_next(logits, self.params, self.generator)
        text = self.push(token)
        if context_full and not self.finished:
            text += self.end("length")
        return token, text

    def push(self, token_id: int) -> str:
        """Record one generated token; return the text that may now be streamed."""
        self.generated += 1
        if token_id in self.end_token_ids:
            self.finish_reason = "stop"
            return self._release()
        self.token_ids.append(token_id)
        searched_to = len(self.text)
        self._decode_new(final=len(self.token_ids) >= self.params.max_tokens)
        cut = self._find_stop(searched_to)
        if cut >= 0:
            self.text = self.text[:cut]
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.params.max_tokens:
            self.finish_reason = "length"
        return self._release()

    def _decode_new(self, final: bool) -> None:
        """Append the text of new tokens, decoding a window that starts one step back.

        Decoding all tokens every step costs O(n) per token; the window keeps it constant.
        A token that ends mid-character waits for the next one (unless this is the end).
        """
        before = self.tokenizer.decode(
            self.token_ids[self._window_start : self._decoded], skip_special_tokens=True
        )
        after = self.tokenizer.decode(
            self.token_ids[self._window_start :], skip_special_tokens=True
        )
        if final or (len(after) > len(before) and not after.endswith(REPLACEMENT)):
            self.text += after[len(before) :]
            self._window_start, self._decoded = self._decoded, len(self.token_ids)

    def _find_stop(self, searched_to: int) -> int:
        """Where the first stop string starts, looking only where a new one could be."""
        longest = max((len(s) for s in self.params.stop), default=0)
        start = max(0, searched_to - longest + 1)
        found = [i for i in (self.text.find(s, start) for s in self.params.stop) if i >= 0]
        return min(found, default=-1)

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
