"""Extractive question answering: the answer is a span of the context.

Contexts longer than the model are read in overlapping windows (``doc_stride`` tokens of
overlap), each window is scored, and the best span over all windows wins; offsets always
point into the original context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.handlers.base import Batch, TaskHandler
from tuneserve.tasks.metrics import squad_scores
from tuneserve.tasks.qa import SPEC, QaItem, QaOutput, QaRow

MAX_ANSWER_TOKENS = 30
CANDIDATES = 20  # best starts × best ends examined per window


class QaHandler(TaskHandler[QaItem, QaRow, QaOutput]):
    spec = SPEC
    auto_model = AutoModelForQuestionAnswering
    head_modules = ("qa_outputs",)

    def __init__(self, model, tokenizer, *, max_length: int = 256, options=None):
        super().__init__(model, tokenizer, max_length=max_length, options=options)
        self.doc_stride = min(self.options.doc_stride, self.max_length // 4)

    def _windows(self, questions: list[str], contexts: list[str], padding: str | bool):
        """Question + context windows; too long a question is the client's error."""
        for index, ids in enumerate(self.tokenizer(questions)["input_ids"]):
            if len(ids) > self.max_length // 2:
                raise InvalidRequest(
                    f"question is {len(ids)} tokens; at most {self.max_length // 2} allowed",
                    param=f"inputs[{index}].question",
                )
        return self.tokenizer(
            questions,
            contexts,
            truncation="only_second",
            max_length=self.max_length,
            stride=self.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=padding,
        )

    def preprocess(self, items: Sequence[QaItem]) -> Batch:
        encoded = self._windows([i.question for i in items], [i.context for i in items], "longest")
        meta = {
            "item_of": encoded.pop("overflow_to_sample_mapping"),
            "offsets": encoded.pop("offset_mapping"),
            "in_context": [
                [sid == 1 for sid in encoded.sequence_ids(w)] for w in range(len(encoded.encodings))
            ],
        }
        inputs = {key: torch.tensor(value, device=self.device) for key, value in encoded.items()}
        return Batch(inputs=inputs, items=items, meta=meta)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**batch.inputs)
        mask = batch.inputs["attention_mask"] == 0
        return (
            out.start_logits.masked_fill(mask, -1e4).log_softmax(-1).cpu(),
            out.end_logits.masked_fill(mask, -1e4).log_softmax(-1).cpu(),
        )

    def _best_span(self, start_lp, end_lp, in_context) -> tuple[float, int, int] | None:
        """Most likely (log-prob, start token, end token) span inside the context, if any."""
        allowed = torch.tensor(in_context)
        start_lp = start_lp.masked_fill(~allowed, -1e9)
        end_lp = end_lp.masked_fill(~allowed, -1e9)
        best = None
        starts = start_lp.topk(min(CANDIDATES, len(in_context))).indices.tolist()
        ends = end_lp.topk(min(CANDIDATES, len(in_context))).indices.tolist()
        for s in starts:
            for e in ends:
                if not (in_context[s] and in_context[e] and s <= e < s + MAX_ANSWER_TOKENS):
                    continue
                score = float(start_lp[s] + end_lp[e])
                if best is None or score > best[0]:
                    best = (score, s, e)
        return best

    def postprocess(self, batch: Batch, outputs) -> list[QaOutput]:
        start_lp, end_lp = outputs
        best: dict[int, tuple[float, int, int]] = {}
        for window, item_index in enumerate(batch.meta["item_of"]):
            span = self._best_span(
                start_lp[window], end_lp[window], batch.meta["in_context"][window]
            )
            if span is None:
                continue
            offsets = batch.meta["offsets"][window]
            candidate = (span[0], offsets[span[1]][0], offsets[span[2]][1])
            if item_index not in best or candidate[0] > best[item_index][0]:
                best[item_index] = candidate
        results = []
        for index, item in enumerate(batch.items):
            log_prob, start, end = best.get(index, (float("-inf"), 0, 0))
            results.append(
                QaOutput(
                    answer=item.context[start:end],
                    start=start,
                    end=end,
                    score=float(torch.tensor(log_prob).exp()),
                )
            )
        return results

    def training_features(self, rows: Sequence[QaRow]) -> list[dict[str, Any]]:
        """One feature per window; a window without the answer points at [CLS] (index 0)."""
        encoded = self._windows([r.question for r in rows], [r.context for r in rows], False)
        features = []
        for window, row_index in enumerate(encoded["overflow_to_sample_mapping"]):
            row = rows[row_index]
            answer_start = row.answers.answer_start[0]
            answer_end = answer_start + len(row.answers.text[0])
            start_token = end_token = 0
            sequence_ids = encoded.sequence_ids(window)
            for token, (first, last) in enumerate(encoded["offset_mapping"][window]):
                if sequence_ids[token] != 1:
                    continue
                if first <= answer_start < last or (first == answer_start and last > first):
                    start_token = token
                if first < answer_end <= last:
                    end_token = token
            if not (start_token and end_token):
                start_token = end_token = 0
            features.append(
                {
                    "input_ids": encoded["input_ids"][window],
                    "attention_mask": encoded["attention_mask"][window],
                    "start_positions": start_token,
                    "end_positions": end_token,
                }
            )
        return features

    @property
    def collator(self) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(self.tokenizer, return_tensors="pt")

    def evaluate(self, rows: Sequence[QaRow], *, batch_size: int = 32) -> dict[str, Any]:
        items = [QaItem(question=r.question, context=r.context) for r in rows]
        predictions = [out.answer for out in self.predict_in_chunks(items, batch_size)]
        return squad_scores(predictions, [r.answers.text for r in rows])
