"""Named-entity recognition: a token-classification encoder over IOB2 tags.

Training rows come as words with tags; served text is split into words by the tokenizer's
own pre-tokenizer. Each word is tagged by its first word piece, and entities carry character
offsets into the text they came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from seqeval.metrics import classification_report as seqeval_report
from seqeval.scheme import IOB2
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from tuneserve.tasks.handlers.base import IGNORED, Batch, TaskHandler
from tuneserve.tasks.ner import SPEC, Entity, NerItem, NerOutput, NerRow, iob2_spans


def _scores(entry: dict) -> dict[str, float]:
    return {
        name: float(entry[key])
        for name, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"))
    }


class NerHandler(TaskHandler[NerItem, NerRow, NerOutput]):
    spec = SPEC
    auto_model = AutoModelForTokenClassification
    head_modules = ("classifier",)

    def preprocess(self, items: Sequence[NerItem]) -> Batch:
        encoded = self._encode_truncated([i.text for i in items], return_offsets_mapping=True)
        meta = {"truncated": encoded.truncated, "word_ids": encoded.word_ids}
        meta["offsets"] = encoded.offsets
        return Batch(inputs=encoded.inputs, items=items, meta=meta)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(**batch.inputs).logits.softmax(dim=-1).cpu()

    def _word_tags(self, probs: torch.Tensor, word_ids: list[int | None]):
        """Tag and score of each word, read from its first word piece."""
        labels = self._labels()
        scores, indices = probs.max(dim=-1)
        words: dict[int, tuple[str, float, int]] = {}
        for position, word in enumerate(word_ids):
            if word is not None and word not in words:
                words[word] = (labels[int(indices[position])], float(scores[position]), position)
        return words

    def postprocess(self, batch: Batch, outputs: torch.Tensor) -> list[NerOutput]:
        results = []
        for row, item in enumerate(batch.items):
            word_ids, offsets = batch.meta["word_ids"][row], batch.meta["offsets"][row]
            words = self._word_tags(outputs[row], word_ids)
            char_span = {w: [None, None] for w in words}
            for position, word in enumerate(word_ids):
                if word is not None:
                    start, end = offsets[position]
                    char_span[word][0] = start if char_span[word][0] is None else char_span[word][0]
                    char_span[word][1] = end
            order = sorted(words)
            entities = []
            for kind, first, last in iob2_spans([words[w][0] for w in order]):
                start, end = char_span[order[first]][0], char_span[order[last]][1]
                span_words = order[first : last + 1]
                score = sum(words[w][1] for w in span_words) / len(span_words)
                entities.append(
                    Entity(text=item.text[start:end], label=kind, start=start, end=end, score=score)
                )
            results.append(NerOutput(entities=entities, truncated=batch.meta["truncated"][row]))
        return results

    def training_features(self, rows: Sequence[NerRow]) -> list[dict[str, Any]]:
        encoded = self.tokenizer(
            [row.tokens for row in rows],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
        )
        features = []
        for index, row in enumerate(rows):
            tag_ids = [
                self._label_id(t, f"rows[{index}].tags[{j}]") for j, t in enumerate(row.tags)
            ]
            labels, previous = [], None
            for word in encoded.word_ids(index):
                first_piece = word is not None and word != previous
                labels.append(tag_ids[word] if first_piece else IGNORED)
                previous = word
            features.append(
                {
                    "input_ids": encoded["input_ids"][index],
                    "attention_mask": encoded["attention_mask"][index],
                    "labels": labels,
                }
            )
        return features

    @property
    def collator(self) -> DataCollatorForTokenClassification:
        return DataCollatorForTokenClassification(
            self.tokenizer, label_pad_token_id=IGNORED, return_tensors="pt"
        )

    def items_of(self, rows: Sequence[NerRow]) -> list[NerItem]:
        return [NerItem(text=" ".join(row.tokens)) for row in rows]

    def evaluate(self, rows: Sequence[NerRow], *, batch_size: int = 32) -> dict[str, Any]:
        """Entity-level precision, recall and F1 (seqeval, strict IOB2) over the rows' words."""
        predicted: list[list[str]] = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            encoded = self._encode_truncated([r.tokens for r in chunk], is_split_into_words=True)
            with torch.inference_mode():
                probs = self.model(**encoded.inputs).logits.softmax(dim=-1).cpu()
            for index, row in enumerate(chunk):
                words = self._word_tags(probs[index], encoded.word_ids[index])
                predicted.append(
                    [words[w][0] if w in words else "O" for w in range(len(row.tokens))]
                )
        report = seqeval_report(
            [row.tags for row in rows],
            predicted,
            mode="strict",
            scheme=IOB2,
            output_dict=True,
            zero_division=0,
        )
        return {
            **_scores(report["micro avg"]),
            "per_type": {kind: _scores(v) for kind, v in report.items() if "avg" not in kind},
        }
