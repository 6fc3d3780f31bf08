"""A sixth task that lives only in the test package: sentence-pair similarity on MiniLM.

Nothing in tuneserve names it. One file (this one: spec, schemas and handler) and one line
of registration (the ``task_modules`` setting) make it served, fine-tuned, evaluated and
promoted like the built-in five. It must be importable on every Ray worker: pytest puts
``tests/`` on the driver's ``sys.path``, and Ray hands that path to the workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding
from tuneserve.tasks.handlers.base import Batch, TaskHandler
from tuneserve.tasks.spec import Limits, ServedBy, TaskRequest, TaskSpec


class PairItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text_a: str = Field(min_length=1)
    text_b: str = Field(min_length=1)


class PairRow(PairItem):
    score: float = Field(ge=0, le=1, description="1: same meaning, 0: unrelated.")


class PairOutput(BaseModel):
    score: float


class SimilarityRequest(TaskRequest):
    inputs: list[PairItem] = Field(min_length=1)


class SimilarityResponse(ServedBy):
    results: list[PairOutput]


class SimilarityTask(TaskSpec):
    name = "similarity"
    Item = PairItem
    Row = PairRow
    Output = PairOutput
    route = "/similarity"
    Request = SimilarityRequest
    Response = SimilarityResponse
    summary = "How alike two texts are, from 0 (unrelated) to 1 (same meaning)."
    handler = "sixth_task:SimilarityHandler"
    default_model = "similarity"
    primary_metric = "pearson"
    lower_is_better = frozenset({"mse", "validation_loss"})
    example: ClassVar[dict[str, Any]] = {"text_a": "A dog runs.", "text_b": "A dog is running."}

    def items(self, request: SimilarityRequest, limits: Limits) -> list[PairItem]:
        return request.inputs

    def text_of(self, item: PairItem) -> str:
        return f"{item.text_a} {item.text_b}"


SPEC = SimilarityTask()


class SimilarityHandler(TaskHandler[PairItem, PairRow, PairOutput]):
    """A one-output regression head over the pair, read as a score in [0, 1]."""

    spec = SPEC
    auto_model = AutoModelForSequenceClassification

    def _encode(self, pairs: Sequence[PairItem], **kwargs: Any):
        return self.tokenizer(
            [p.text_a for p in pairs],
            [p.text_b for p in pairs],
            truncation=True,
            max_length=self.max_length,
            **kwargs,
        )

    def preprocess(self, items: Sequence[PairItem]) -> Batch:
        encoded = self._encode(items, padding="longest", return_tensors="pt")
        return Batch(inputs={k: v.to(self.device) for k, v in encoded.items()}, items=items)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(**batch.inputs).logits[:, 0].clamp(0, 1).cpu()

    def postprocess(self, batch: Batch, outputs: torch.Tensor) -> list[PairOutput]:
        return [PairOutput(score=float(score)) for score in outputs]

    def training_features(self, rows: Sequence[PairRow]) -> list[dict[str, Any]]:
        encoded = self._encode(rows)
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": row.score}
            for ids, mask, row in zip(
                encoded["input_ids"], encoded["attention_mask"], rows, strict=True
            )
        ]

    @property
    def collator(self) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(self.tokenizer, return_tensors="pt")

    def evaluate(self, rows: Sequence[PairRow], *, batch_size: int = 32) -> dict[str, Any]:
        """Pearson correlation and mean squared error of the scores."""
        predicted = torch.tensor([o.score for o in self.predict_in_chunks(rows, batch_size)])
        gold = torch.tensor([row.score for row in rows])
        pearson = torch.corrcoef(torch.stack([predicted, gold]))[0, 1]
        return {
            "pearson": 0.0 if pearson.isnan() else float(pearson),
            "mse": float(((predicted - gold) ** 2).mean()),
        }


def base_model(encoder: str, folder) -> None:
    """An untrained similarity model on ``encoder``, saved to ``folder``."""
    from transformers import AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=1, problem_type="regression"
    )
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)


SUBJECTS = ["A man", "A woman", "The child", "An old farmer", "The teacher", "A young girl"]
ACTIONS = [
    ("is playing the guitar", "plays a guitar"),
    ("is riding a bicycle", "rides a bike"),
    ("is cooking dinner", "prepares an evening meal"),
    ("is reading a book", "reads a novel"),
    ("is swimming in the lake", "swims in a lake"),
    ("is painting a wall", "paints the wall"),
]


def pairs(count: int, seed: int) -> list[dict]:
    """Paraphrases (1.0), same subject doing another thing (0.4), unrelated (0.0)."""
    rng, rows = random.Random(seed), []
    for index in range(count):
        subject, other = rng.sample(SUBJECTS, 2)
        (act, para), (act2, _) = rng.sample(ACTIONS, 2)
        kind = index % 3
        text_b, score = (
            (f"{subject} {para}.", 1.0),
            (f"{subject} {act2}.", 0.4),
            (f"{other} {act2}.", 0.0),
        )[kind]
        rows.append({"text_a": f"{subject} {act}.", "text_b": text_b, "score": score})
    return rows
