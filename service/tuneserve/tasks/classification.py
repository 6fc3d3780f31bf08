"""Text classification: one label per text, best labels first."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.spec import Limits, ServedBy, TaskRequest, TaskSpec, as_list

TopK = Annotated[int, Field(ge=1, le=100, description="Labels per input, best first.")]


class ClassificationItem(BaseModel):
    text: str
    top_k: TopK = 1


class ClassificationRow(BaseModel):
    text: str
    label: str = Field(min_length=1)


class LabelScore(BaseModel):
    label: str
    score: float


class ClassificationOutput(BaseModel):
    label: str
    score: float
    top: list[LabelScore]
    truncated: bool = Field(description="True when the text was cut to the model's length.")


class ClassifyRequest(TaskRequest):
    inputs: str | list[str] = Field(examples=["The concert was wonderful."])
    top_k: TopK = 1


class ClassifyResponse(ServedBy):
    results: list[ClassificationOutput]


class ClassificationTask(TaskSpec):
    name = "classification"
    Item = ClassificationItem
    Row = ClassificationRow
    Output = ClassificationOutput
    route = "/classify"
    Request = ClassifyRequest
    Response = ClassifyResponse
    summary = "Label each input text, best labels first."
    handler = "tuneserve.tasks.handlers.classification:ClassificationHandler"
    default_model = "sentiment"
    architectures = ("ForSequenceClassification",)
    encoder_head = True
    primary_metric = "accuracy"
    example: ClassVar[dict[str, Any]] = {"text": "A warm-up sentence."}
    label_kind = "labels"

    def items(self, request: ClassifyRequest, limits: Limits) -> list[ClassificationItem]:
        return [ClassificationItem(text=t, top_k=request.top_k) for t in as_list(request.inputs)]

    def row_labels(self, row: dict[str, Any]) -> list[str]:
        return [row["label"]]

    def new_head(self, labels: list[str]) -> list[str]:
        """The classes in the order given (their ids), each once."""
        classes = list(dict.fromkeys(labels))
        if len(classes) < 2:
            raise InvalidRequest("a classifier needs at least two distinct labels", param="labels")
        return classes


SPEC = ClassificationTask()
