"""Translation: an encoder-decoder generating the target sentence greedily."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sacrebleu
import torch
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq

from tuneserve.tasks.handlers.base import Batch, TaskHandler, TokenCounts
from tuneserve.tasks.translation import (
    SPEC,
    TranslationItem,
    TranslationOutput,
    TranslationRow,
)


class TranslationHandler(TaskHandler[TranslationItem, TranslationRow, TranslationOutput]):
    spec = SPEC
    auto_model = AutoModelForSeq2SeqLM

    def preprocess(self, items: Sequence[TranslationItem]) -> Batch:
        encoded = self._encode_truncated([item.text for item in items])
        encoded.inputs.pop("token_type_ids", None)
        return Batch(inputs=encoded.inputs, items=items, meta={"truncated": encoded.truncated})

    def forward(self, batch: Batch) -> torch.Tensor:
        """Greedy decoding is per-row deterministic, so one call serves every item's limit."""
        longest = max(item.max_new_tokens for item in batch.items)
        return self.model.generate(
            **batch.inputs, max_new_tokens=longest, do_sample=False, num_beams=1
        ).cpu()

    def postprocess(self, batch: Batch, outputs: torch.Tensor) -> list[TranslationOutput]:
        # generated rows start with the decoder start token, which is not a generated token
        texts = self.tokenizer.batch_decode(
            [
                row[1 : 1 + item.max_new_tokens]
                for row, item in zip(outputs, batch.items, strict=True)
            ],
            skip_special_tokens=True,
        )
        return [
            TranslationOutput(translation=text.strip(), truncated=truncated)
            for text, truncated in zip(texts, batch.meta["truncated"], strict=True)
        ]

    def count_tokens(self, batch: Batch, outputs: torch.Tensor) -> TokenCounts:
        """Input tokens, and each item's generated tokens up to its own limit (no padding)."""
        pad = self.tokenizer.pad_token_id
        written = sum(
            int((row[1 : 1 + item.max_new_tokens] != pad).sum())
            for row, item in zip(outputs, batch.items, strict=True)
        )
        return TokenCounts(input=super().count_tokens(batch, outputs).input, output=written)

    def training_features(self, rows: Sequence[TranslationRow]) -> list[dict[str, Any]]:
        encoded = self.tokenizer(
            [row.source for row in rows],
            text_target=[row.target for row in rows],
            truncation=True,
            max_length=self.max_length,
        )
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": labels}
            for ids, mask, labels in zip(
                encoded["input_ids"], encoded["attention_mask"], encoded["labels"], strict=True
            )
        ]

    @property
    def collator(self) -> DataCollatorForSeq2Seq:
        return DataCollatorForSeq2Seq(self.tokenizer, model=self.model, return_tensors="pt")

    def evaluate(self, rows: Sequence[TranslationRow], *, batch_size: int = 32) -> dict[str, Any]:
        """Corpus sacreBLEU and chrF of greedy translations against one reference each."""
        items = [TranslationItem(text=row.source, max_new_tokens=128) for row in rows]
        hypotheses = [out.translation for out in self.predict_in_chunks(items, batch_size)]
        references = [[row.target for row in rows]]
        return {
            "bleu": sacrebleu.corpus_bleu(hypotheses, references).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, references).score,
        }
