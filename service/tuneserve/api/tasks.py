"""Request and response bodies of the task routes (``/v1/classify``, ``/v1/ner``, …).

Every request takes an optional ``model`` (``name``, ``name@3`` or ``name@alias``) and one
input or a list; every response names the model and concrete version that served it and
always carries a list of results, one per input, in order.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.tasks.classification import ClassificationOutput
from tuneserve.tasks.ner import NerOutput
from tuneserve.tasks.qa import QaOutput
from tuneserve.tasks.translation import TranslationOutput

MODEL_FIELD = Field(
    default=None,
    description="`name`, `name@<version>` or `name@<alias>`; default: the task's default "
    "model at `production`.",
    examples=["sentiment", "sentiment@1", "sentiment@production"],
)


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = MODEL_FIELD


class ClassifyRequest(TaskRequest):
    inputs: str | list[str] = Field(examples=["The concert was wonderful."])
    top_k: int = Field(default=1, ge=1, le=100, description="Labels per input, best first.")


class NerRequest(TaskRequest):
    inputs: str | list[str] = Field(examples=["Anna Schmidt flew to Paris."])


class QaInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1)
    context: str = Field(min_length=1)


class QaRequest(TaskRequest):
    question: str | None = Field(default=None, min_length=1)
    context: str | None = Field(default=None, min_length=1)
    inputs: list[QaInput] | None = Field(
        default=None, description="Several question/context pairs."
    )


class TranslateRequest(TaskRequest):
    inputs: str | list[str] = Field(examples=["The woman buys the book."])
    max_new_tokens: int = Field(default=64, ge=1, description="Most tokens per translation.")


class ServedBy(BaseModel):
    model: str
    version: int


class ClassifyResponse(ServedBy):
    results: list[ClassificationOutput]


class NerResponse(ServedBy):
    results: list[NerOutput]


class QaResponse(ServedBy):
    results: list[QaOutput]


class TranslateResponse(ServedBy):
    results: list[TranslationOutput]


class VersionPublic(BaseModel):
    version: int
    task: str
    created_at: str
    sha256: str
    base_version: int | None
    metrics: dict
    lineage: dict
    aliases: list[str]


class ModelPublic(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "tuneserve"
    task: str
    description: str
    aliases: dict[str, int]


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelPublic]


class VersionList(BaseModel):
    object: str = "list"
    model: str
    data: list[VersionPublic]


class ErrorDetail(BaseModel):
    type: str
    message: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
