"""Request and response bodies of the task routes and the model registry routes.

The task bodies are defined by each task's spec (``tuneserve.tasks.<task>``) and re-exported
here: every request takes an optional ``model`` (``name``, ``name@3`` or ``name@alias``) and
one input or a list; every response names the model and concrete version that served it
and always carries a list of results, one per input, in order.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from tuneserve.api.types import IsoTime, UnixTime
from tuneserve.tasks.classification import ClassifyRequest, ClassifyResponse
from tuneserve.tasks.ner import NerRequest, NerResponse
from tuneserve.tasks.qa import QaItem as QaInput
from tuneserve.tasks.qa import QaRequest, QaResponse
from tuneserve.tasks.spec import ServedBy, TaskRequest
from tuneserve.tasks.translation import TranslateRequest, TranslateResponse

__all__ = [
    "ClassifyRequest",
    "ClassifyResponse",
    "ErrorBody",
    "ErrorDetail",
    "ModelList",
    "ModelPublic",
    "NerRequest",
    "NerResponse",
    "QaInput",
    "QaRequest",
    "QaResponse",
    "ServedBy",
    "TaskRequest",
    "TranslateRequest",
    "TranslateResponse",
    "VersionList",
    "VersionPublic",
]


class VersionPublic(BaseModel):
    """A registry version (read from its record with ``from_attributes``)."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    task: str
    created_at: IsoTime
    sha256: str
    base_version: int | None
    metrics: dict
    lineage: dict
    variants: dict = Field(
        default_factory=dict,
        description="Optimised variants verified against fp32 on the validation rows: per "
        "variant (int8, bf16, onnx, onnx-int8), serve, reason, metric, fp32, value, "
        "agreement, speedup (in batches of 32 and alone; each shape's as speedup_batched and "
        "speedup_alone), items; and `by-size` where two that passed are each fastest at one "
        "batch size (small, large, from_rows). A request gets the one that serves (or fp32); "
        "`variant` in the body picks one.",
    )
    aliases: list[str]


class ModelPublic(BaseModel):
    """A registry model, OpenAI-shaped (read from its record with ``from_attributes``)."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(validation_alias=AliasChoices("id", "name"))
    object: str = "model"
    created: UnixTime = Field(validation_alias=AliasChoices("created", "created_at"))
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
