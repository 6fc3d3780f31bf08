"""Extractive question answering: the answer is a span of the context."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.spec import Limits, ServedBy, TaskRequest, TaskSpec


class QaItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1)
    context: str = Field(min_length=1)


class Answers(BaseModel):
    text: list[str] = Field(min_length=1)
    answer_start: list[int] = Field(min_length=1)


class QaRow(BaseModel):
    question: str = Field(min_length=1)
    context: str = Field(min_length=1)
    answers: Answers

    @model_validator(mode="after")
    def _answers_in_context(self) -> Self:
        if len(self.answers.text) != len(self.answers.answer_start):
            raise ValueError("answers.text and answers.answer_start differ in length")
        for text, start in zip(self.answers.text, self.answers.answer_start, strict=True):
            if self.context[start : start + len(text)] != text:
                raise ValueError(f"answer {text!r} is not at character {start} of the context")
        return self


class QaOutput(BaseModel):
    answer: str
    start: int = Field(description="Character offset of the answer in the context.")
    end: int = Field(description="Character offset one past the answer's end.")
    score: float


class QaRequest(TaskRequest):
    question: str | None = Field(default=None, min_length=1)
    context: str | None = Field(default=None, min_length=1)
    inputs: list[QaItem] | None = Field(default=None, description="Several question/context pairs.")


class QaResponse(ServedBy):
    results: list[QaOutput]


class QaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc_stride: int = Field(default=64, gt=0, description="Token overlap between context windows.")


class QaTask(TaskSpec):
    name = "qa"
    Item = QaItem
    Row = QaRow
    Output = QaOutput
    route = "/qa"
    Request = QaRequest
    Response = QaResponse
    summary = "The answer span of each question in its context."
    handler = "tuneserve.tasks.handlers.qa:QaHandler"
    default_model = "qa"
    architectures = ("ForQuestionAnswering",)
    encoder_head = True
    primary_metric = "exact_match"
    example: ClassVar[dict[str, Any]] = {"question": "Who?", "context": "Anna did."}
    Options = QaOptions

    def items(self, request: QaRequest, limits: Limits) -> list[QaItem]:
        if request.inputs is not None:
            if request.question or request.context:
                raise InvalidRequest("give either question and context, or inputs", param="inputs")
            return request.inputs
        if not (request.question and request.context):
            raise InvalidRequest("question and context are required", param="question")
        return [QaItem(question=request.question, context=request.context)]

    def text_of(self, item: QaItem) -> str:
        return item.context


SPEC = QaTask()
