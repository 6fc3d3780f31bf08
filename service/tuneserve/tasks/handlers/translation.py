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

# Guards against the way greedy decoding fails: a repeated 3-gram is never written (German
# sentences of this length hardly ever repeat one), a token already written is mildly
# penalised, and a translation is at most LENGTH_RATIO × its source's tokens + LENGTH_SLACK
# long (within the request's max_new_tokens). Chosen on held-out Multi30k pairs: see the
# README's translation figures.
DECODING = {"no_repeat_ngram_size": 3, "repetition_penalty": 1.1}
LENGTH_RATIO, LENGTH_SLACK = 2.0, 8


class TranslationHandler(TaskHandler[TranslationItem, TranslationRow, TranslationOutput]):
    spec = SPEC
    auto_model = AutoModelForSeq2SeqLM

    def preprocess(self, items: Sequence[TranslationItem]) -> Batch:
        encoded = self._encode_truncated([item.text for item in items])
        encoded.inputs.pop("token_type_ids", None)
        sources = encoded.inputs["attention_mask"].sum(dim=1).tolist()
        # a model with learnt or fixed position tables cannot write past them
        positions = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        limits = [
            min(item.max_new_tokens, int(LENGTH_RATIO * n) + LENGTH_SLACK, positions - 1)
            for item, n in zip(items, sources, strict=True)
        ]
        meta = {"truncated": encoded.truncated, "limits": limits}
        return Batch(inputs=encoded.inputs, items=items, meta=meta)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Greedy decoding is per-row deterministic, so one call serves every item's limit."""
        return self.model.generate(
            **batch.inputs,
            max_new_tokens=max(batch.meta["limits"]),
            do_sample=False,
            num_beams=1,
            **DECODING,
        ).cpu()

    def postprocess(self, batch: Batch, outputs: torch.Tensor) -> list[TranslationOutput]:
        # generated rows start with the decoder start token, which is not a generated token
        texts = self.tokenizer.batch_decode(
            [row[1 : 1 + limit] for row, limit in zip(outputs, batch.meta["limits"], strict=True)],
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
            int((row[1 : 1 + limit] != pad).sum())
            for row, limit in zip(outputs, batch.meta["limits"], strict=True)
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
