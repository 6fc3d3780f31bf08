"""What a task-server replica records about one model version it serves.

One object per resident version, its labels bound once, so the batcher, the chat engine
and the loader each report in a word and never build label sets on the hot path.
"""

from __future__ import annotations

from tuneserve.serving.batcher import BatchRecord
from tuneserve.tasks.handlers.base import TokenCounts
from tuneserve.telemetry import catalog
from tuneserve.telemetry.recorder import Recorder


class VersionMetrics:
    def __init__(self, recorder: Recorder, task: str, model: str, version: int):
        self.recorder = recorder
        self.labels = {"task": task, "model": model, "version": str(version)}

    # --- requests ------------------------------------------------------------------------
    def request(self, ok: bool, items: int = 1) -> None:
        outcome = "ok" if ok else "error"
        self.recorder.count(catalog.INFERENCE_REQUESTS, outcome=outcome, **self.labels)
        self.recorder.count(catalog.INFERENCE_ITEMS, items, **self.labels)

    def batch_started(self, record: BatchRecord) -> None:
        """The batcher's hook: one batch of ``record.items`` after the requests' waits."""
        self.recorder.observe(catalog.BATCH_SIZE, record.items, **self.labels)
        for waited in record.waited_s:
            self.recorder.observe(catalog.QUEUE_DURATION, waited, **self.labels)

    def batch_done(self, seconds: float, tokens: TokenCounts) -> None:
        self.recorder.observe(catalog.BATCH_DURATION, seconds, **self.labels)
        self.recorder.count(catalog.INPUT_TOKENS, tokens.input, **self.labels)
        self.recorder.count(catalog.OUTPUT_TOKENS, tokens.output, **self.labels)

    # --- chat ----------------------------------------------------------------------------
    def stream_joined(self, waited_s: float, prompt_tokens: int) -> None:
        self.recorder.observe(catalog.QUEUE_DURATION, waited_s, **self.labels)
        self.recorder.count(catalog.INPUT_TOKENS, prompt_tokens, **self.labels)

    def decoding_step(self, sequences: int, seconds: float) -> None:
        """One step decoded one token for each of ``sequences`` streams."""
        self.recorder.observe(catalog.BATCH_SIZE, sequences, **self.labels)
        self.recorder.observe(catalog.BATCH_DURATION, seconds, **self.labels)
        self.recorder.count(catalog.OUTPUT_TOKENS, sequences, **self.labels)

    def first_token(self, seconds: float) -> None:
        self.recorder.observe(catalog.TIME_TO_FIRST_TOKEN, seconds, **self.labels)

    def completion(self, tokens_after_first: int, seconds: float) -> None:
        if tokens_after_first > 0 and seconds > 0:
            rate = tokens_after_first / seconds
            self.recorder.observe(catalog.GENERATION_RATE, rate, **self.labels)

    # --- residency -----------------------------------------------------------------------
    def loaded(self, seconds: float) -> None:
        self.recorder.count(catalog.MODEL_LOADS, outcome="ok", **self.labels)
        self.recorder.observe(catalog.MODEL_LOAD_DURATION, seconds, **self.labels)
        self.resident()

    def resident(self) -> None:
        """Ray forgets a gauge value not set again within a few report intervals, so the
        replica calls this periodically for every version it holds."""
        self.recorder.set(catalog.RESIDENT_VERSIONS, 1, **self.labels)

    def load_failed(self) -> None:
        self.recorder.count(catalog.MODEL_LOADS, outcome="error", **self.labels)

    def evicted(self) -> None:
        self.recorder.set(catalog.RESIDENT_VERSIONS, 0, **self.labels)


def unrecorded() -> VersionMetrics:
    """Metrics that go nowhere (an engine used outside a replica, in tests)."""
    return VersionMetrics(Recorder(enabled=False), "", "", 0)
