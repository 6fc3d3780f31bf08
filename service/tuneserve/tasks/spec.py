"""What a task is, torch-free: its schemas, route, labels, defaults and where its handler is.

A task is one spec (a subclass of ``TaskSpec``, instantiated once as the module's ``SPEC``)
plus its handler (``tasks/handlers/``, the only part that touches torch). Everything else —
the HTTP route, file validation, training defaults, the gate's metric — is read from the
spec, so the gateway, task servers and trainer stay task-agnostic. Spec modules import no
torch, transformers, ray or sqlalchemy: ``api/`` re-exports their schemas.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.errors import InvalidRequest

ModelRefField = Annotated[
    str | None,
    Field(
        description="`name`, `name@<version>` or `name@<alias>`; default: the task's default "
        "model at `production`.",
        examples=["sentiment", "sentiment@1", "sentiment@production"],
    ),
]


# the task of a registered plain encoder (no head): never served, only fine-tuned from, by a
# job that gives it a new head (``labels``) and a task whose models are encoders with heads
BASE_ENCODER = "encoder"


# The forms a version can run in (tasks.handlers.variants builds them): fp32 as trained, int8
# dynamic quantisation of its linear layers, bf16 its encoder in bfloat16, onnx the model run
# by ONNX Runtime (its graph fused), onnx-int8 that graph with int8 weights; by-size two of
# those that passed, each running the batch sizes it is fastest at.
Variant = Literal["fp32", "int8", "bf16", "onnx", "onnx-int8", "by-size"]


class TaskRequest(BaseModel):
    """Every task route's body: an optional model reference plus the task's own fields."""

    model_config = ConfigDict(extra="forbid")
    model: ModelRefField = None
    variant: Variant | None = Field(
        default=None,
        description="The form of the version to run. Omitted: the one verified to serve "
        "(an optimised variant that passed verification, else fp32; see the version's "
        "`variants`). 'fp32': the weights as trained. 'int8': dynamic quantisation; 'bf16': "
        "the encoder in bfloat16; 'onnx': ONNX Runtime, its graph fused; 'onnx-int8': that "
        "graph with int8 weights; each even where verification rejected it, to compare. "
        "'by-size': two verified variants, small batches on the one fastest alone, large on "
        "the one fastest in batches (where the version's `variants` has a `by-size` verdict).",
    )


class ServedBy(BaseModel):
    """Every task response names the model, the concrete version and the variant that
    served it."""

    model: str
    version: int
    variant: Variant = "fp32"


class NoOptions(BaseModel):
    """A task without settings of its own."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Limits:
    """Server-side bounds a request's items are clipped to."""

    max_new_tokens: int


class TaskSpec:
    """Everything task-specific that is not model code; one instance per task."""

    name: ClassVar[str]
    Item: ClassVar[type[BaseModel]]  # one input the model reads
    Row: ClassVar[type[BaseModel]]  # one training row of an uploaded file
    Output: ClassVar[type[BaseModel]]  # one result
    # the generated route: POST /v1/<route> taking Request and answering Response
    route: ClassVar[str | None] = None
    Request: ClassVar[type[TaskRequest] | None] = None
    Response: ClassVar[type[ServedBy] | None] = None
    summary: ClassVar[str] = ""
    handler: ClassVar[str | type]  # "module:Class", imported only where a model runs
    default_model: ClassVar[str]
    primary_metric: ClassVar[str]
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"validation_loss"})
    example: ClassVar[dict[str, Any]]  # one request item, used to warm a loaded model
    learning_rate: ClassVar[float] = 1e-4  # fine-tuning default (a pretrained encoder)
    streams: ClassVar[bool] = False
    label_kind: ClassVar[str | None] = None  # "labels" / "tags" when rows carry them
    # how an imported model shows it does this task: suffixes of ``config.architectures``
    # (``BertForSequenceClassification`` ends with ``ForSequenceClassification``)
    architectures: ClassVar[tuple[str, ...]] = ()
    # a head on a BERT-style encoder: a job may start one from any such model's encoder
    encoder_head: ClassVar[bool] = False
    Options: ClassVar[type[BaseModel]] = NoOptions  # per-task settings (task_options.<name>)

    # --- serving -----------------------------------------------------------------------
    def items(self, request: TaskRequest, limits: Limits) -> list[BaseModel]:
        """The request's inputs as items, in order."""
        raise NotImplementedError(f"task {self.name} has no generated route")

    def text_of(self, item: BaseModel) -> str:
        """The text of an item that the size limits apply to (``inputs[i]`` in errors)."""
        return item.text  # type: ignore[attr-defined]

    # --- fine-tuning rows --------------------------------------------------------------
    def row_labels(self, row: dict[str, Any]) -> list[str]:
        """The labels a validated row uses, which the model's head must know."""
        return []

    def head_labels(self, labels: set[str]) -> list[str]:
        """The labels a model's head needs to predict ``labels`` (sorted)."""
        return sorted(labels)

    def new_head(self, labels: list[str]) -> list[str]:
        """The labels, in id order, of a fresh output head for a job's ``labels``."""
        raise InvalidRequest(f"{self.name} models have no labels to choose", param="labels")

    def row_errors(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        """(field, message) of problems the row schema cannot express."""
        return []

    def unknown_labels(self, labels: list[str], known: list[str], allow_new: bool) -> list[str]:
        """A file's labels the base model lacks; refused unless the job declared new labels."""
        known_set = set(known)
        new = [label for label in labels if label not in known_set]
        if new and not allow_new:
            kind = self.label_kind or "labels"
            raise InvalidRequest(
                f"the training file has {kind} the {self.name} model's head does not know: "
                f"{', '.join(new)}; its {kind} are: {', '.join(known)}. Relabel those rows, "
                f"or declare the new {kind} to add them to the model",
                param="labels",
            )
        return new

    def required_fields(self) -> set[str]:
        return {name for name, field in self.Row.model_fields.items() if field.is_required()}

    # --- configuration -----------------------------------------------------------------
    def options(self, values: dict[str, Any] | None) -> BaseModel:
        """This task's settings, validated; a bad value names the task's settings key."""
        try:
            return self.Options.model_validate(values or {})
        except ValueError as error:
            raise InvalidRequest(
                f"task_options.{self.name}: {error}", param=f"task_options.{self.name}"
            ) from None

    def handler_class(self) -> type:
        """The handler class (imports torch and transformers on first use)."""
        if isinstance(self.handler, type):
            return self.handler
        module, _, attribute = self.handler.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def gain(self, metric: str, candidate: float, production: float) -> float:
        """How much better the candidate is on ``metric`` (negative: worse)."""
        gain = candidate - production
        return -gain if metric in self.lower_is_better else gain


def as_list(inputs: str | list[str]) -> list[str]:
    return [inputs] if isinstance(inputs, str) else inputs
