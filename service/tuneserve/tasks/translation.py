"""Translation: each input text translated by a sequence-to-sequence model."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from tuneserve.tasks.spec import Limits, ServedBy, TaskRequest, TaskSpec, as_list


class TranslationItem(BaseModel):
    text: str
    max_new_tokens: int = Field(default=64, ge=1, description="Most tokens to generate.")


class TranslationRow(BaseModel):
    source: str = Field(min_length=1)
    target: str = Field(min_length=1)


class TranslationOutput(BaseModel):
    translation: str
    truncated: bool = Field(description="True when the source was cut to the model's length.")


class TranslateRequest(TaskRequest):
    inputs: str | list[str] = Field(examples=["The woman buys the book."])
    max_new_tokens: int = Field(default=64, ge=1, description="Most tokens per translation.")


class TranslateResponse(ServedBy):
    results: list[TranslationOutput]


class TranslationTask(TaskSpec):
    name = "translation"
    Item = TranslationItem
    Row = TranslationRow
    Output = TranslationOutput
    route = "/translate"
    Request = TranslateRequest
    Response = TranslateResponse
    summary = "Translate each input text."
    handler = "tuneserve.tasks.handlers.translation:TranslationHandler"
    default_model = "translate-en-de"
    architectures = ("ForConditionalGeneration", "MTModel")
    primary_metric = "bleu"
    example: ClassVar[dict[str, Any]] = {"text": "A warm-up sentence.", "max_new_tokens": 4}
    learning_rate = 1e-3  # small models trained from scratch

    def items(self, request: TranslateRequest, limits: Limits) -> list[TranslationItem]:
        most = min(request.max_new_tokens, limits.max_new_tokens)
        return [TranslationItem(text=t, max_new_tokens=most) for t in as_list(request.inputs)]


SPEC = TranslationTask()
