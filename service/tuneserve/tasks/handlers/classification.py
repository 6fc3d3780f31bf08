"""Text classification: a sequence-classification encoder, one label per text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from tuneserve.tasks.classification import (
    SPEC,
    ClassificationItem,
    ClassificationOutput,
    ClassificationRow,
    LabelScore,
)
from tuneserve.tasks.handlers.base import Batch, TaskHandler
from tuneserve.tasks.metrics import classification_report


class ClassificationHandler(
    TaskHandler[ClassificationItem, ClassificationRow, ClassificationOutput]
):
    spec = SPEC
    auto_model = AutoModelForSequenceClassification
    head_modules = ("classifier",)

    def preprocess(self, items: Sequence[ClassificationItem]) -> Batch:
        encoded = self._encode_truncated([item.text for item in items])
        return Batch(inputs=encoded.inputs, items=items, meta={"truncated": encoded.truncated})

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(**batch.inputs).logits.softmax(dim=-1).cpu()

    def postprocess(self, batch: Batch, outputs: torch.Tensor) -> list[ClassificationOutput]:
        labels = self._labels()
        results = []
        for item, probs, truncated in zip(
            batch.items, outputs, batch.meta["truncated"], strict=True
        ):
            scores, indices = probs.topk(min(item.top_k, len(labels)))
            top = [
                LabelScore(label=labels[i], score=float(s))
                for s, i in zip(scores, indices, strict=True)
            ]
            results.append(
                ClassificationOutput(
                    label=top[0].label, score=top[0].score, top=top, truncated=truncated
                )
            )
        return results

    def training_features(self, rows: Sequence[ClassificationRow]) -> list[dict[str, Any]]:
        encoded = self.tokenizer(
            [row.text for row in rows], truncation=True, max_length=self.max_length
        )
        labels = [self._label_id(row.label, f"rows[{i}].label") for i, row in enumerate(rows)]
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": label}
            for ids, mask, label in zip(
                encoded["input_ids"], encoded["attention_mask"], labels, strict=True
            )
        ]

    @property
    def collator(self) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(self.tokenizer, return_tensors="pt")

    def evaluate(
        self, rows: Sequence[ClassificationRow], *, batch_size: int = 32
    ) -> dict[str, Any]:
        items = [ClassificationItem(text=row.text) for row in rows]
        predicted = [out.label for out in self.predict_in_chunks(items, batch_size)]
        return classification_report([row.label for row in rows], predicted, self._labels())
