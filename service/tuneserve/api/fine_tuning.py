"""Files and fine-tuning jobs, shaped as OpenAI's; tuneserve's extensions fenced after."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from tuneserve.api.types import UnixTime
from tuneserve.errors import InvalidRequest
from tuneserve.tasks.lora import LoraParameters

SHOWN_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


class FilePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: UnixTime
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    # --- tuneserve extensions ---
    task: str
    rows: int
    sha256: str
    labels: list[str]
    owner: str = Field(description="The tenant the file belongs to.")


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FilePublic]
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class Hyperparameters(BaseModel):
    """Training knobs; ``auto`` picks the task's default."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    learning_rate_multiplier: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"
    # --- tuneserve extensions ---
    learning_rate: float | None = Field(default=None, gt=0, description="Overrides multiplier.")
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int | None = None
    max_sequence_length: int | None = Field(default=None, gt=8)
    num_workers: int = Field(default=1, ge=1, description="Ray Train workers (DDP).")
    use_gpu: bool | None = Field(
        default=None, description="One GPU per worker; default: the deployment's setting."
    )
    allow_new_labels: bool = Field(
        default=False,
        description="Add labels (NER: entity types) the base model lacks to "
        "its output head, instead of refusing the file.",
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many epochs without a lower validation loss.",
    )


class Promotion(BaseModel):
    """When a trained candidate replaces production."""

    model_config = ConfigDict(extra="forbid")

    metric: str | None = Field(default=None, description="Default: the task's primary metric.")
    min_delta: float = Field(
        default=0.0,
        ge=0.0,
        description="How much better the candidate must be (never negative: a gate that "
        "lets a worse model through is no gate).",
    )
    auto: bool | None = Field(
        default=None,
        description="Promote automatically when the gate passes. Moving production needs "
        "the admin scope: default true for an admin key, false for any other.",
    )


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "lora"] = "supervised"
    supervised: dict[str, Any] | None = None
    lora: LoraParameters | None = None

    @model_validator(mode="after")
    def _lora_only_with_its_type(self) -> Method:
        if self.lora is not None and self.type != "lora":
            raise ValueError("method.lora is given only with method.type 'lora'")
        return self

    def lora_parameters(self) -> LoraParameters | None:
        """The adapter's settings for a LoRA job (defaults where none are given), else None."""
        return (self.lora or LoraParameters()) if self.type == "lora" else None


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # SDK fields we do not use (integrations, …)

    model: str = Field(description="Base model: `name`, `name@<version>` or `name@<alias>`.")
    training_file: str
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_-]{1,40}$",
        description="Write to a new model `<base>:<suffix>` (1-40 lowercase letters, digits, "
        "'-' or '_') instead of a new version of the base; the base's production is untouched.",
    )
    validation_file: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    # --- tuneserve extensions ---
    task: str | None = Field(
        default=None,
        description="Default: the base model's task. With `labels`, any task whose models "
        "are heads on an encoder (classification, ner), from any encoder base.",
    )
    labels: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Start a fresh head for these labels (classification: classes in id "
        "order; ner: entity types or IOB2 tags) instead of the base's head. Needs `suffix`.",
    )
    promotion: Promotion = Field(default_factory=Promotion)

    def resolved_hyperparameters(self) -> Hyperparameters:
        """Top-level ``hyperparameters`` or ``method.supervised.hyperparameters`` (not both)."""
        nested = (self.method.supervised or {}).get("hyperparameters") if self.method else None
        if nested is not None and self.hyperparameters is not None:
            raise InvalidRequest(
                "give hyperparameters at the top level or under method.supervised, not both",
                param="hyperparameters",
            )
        hyper = (
            Hyperparameters.model_validate(nested)
            if nested
            else (self.hyperparameters or Hyperparameters())
        )
        if self.seed is not None and hyper.seed is None:
            hyper = hyper.model_copy(update={"seed": self.seed})
        return hyper


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobPublic(BaseModel):
    """A job, read from its record with ``from_attributes``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: UnixTime
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: UnixTime | None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str = Field(
        validation_alias=AliasChoices("organization_id", "owner"),
        description="The tenant that owns the job.",
    )
    result_files: list[str] = Field(default_factory=list)
    seed: int | None
    status: str
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None = None
    integrations: list = Field(default_factory=list)
    metadata: dict[str, str] | None = None
    method: dict[str, Any] = Field(default_factory=dict)
    user_provided_suffix: str | None = Field(
        validation_alias=AliasChoices("user_provided_suffix", "suffix")
    )
    # --- tuneserve extensions ---
    task: str
    base_version: int
    promotion: dict[str, Any]
    result: dict[str, Any] | None
    trained_examples: int | None

    @model_validator(mode="after")
    def _openai_shape(self) -> JobPublic:
        """OpenAI's three hyperparameters as the job resolved them, under its method."""
        lora = self.hyperparameters.get("lora")
        if lora is None and self.method.get("type") == "lora":  # shaped once already
            lora = {k: v for k, v in self.method["lora"].items() if k != "hyperparameters"}
        self.hyperparameters = {
            key: self.hyperparameters.get(key, "auto") for key in SHOWN_HYPERPARAMETERS
        }
        kind, settings = ("lora", lora) if lora else ("supervised", {})
        self.method = {"type": kind, kind: settings | {"hyperparameters": self.hyperparameters}}
        return self


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobPublic]
    has_more: bool


class EventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: UnixTime
    level: str
    message: str
    data: dict[str, Any] | None = None
    type: str


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventPublic]
    has_more: bool


class CheckpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: UnixTime
    fine_tuned_model_checkpoint: str = Field(
        validation_alias=AliasChoices("fine_tuned_model_checkpoint", "uri")
    )
    fine_tuning_job_id: str = Field(validation_alias=AliasChoices("fine_tuning_job_id", "job_id"))
    metrics: dict[str, Any]
    step_number: int = Field(validation_alias=AliasChoices("step_number", "step"))


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CheckpointPublic]
    has_more: bool = False


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    expected_from: int | None = Field(
        default=None, description="Production version you expect now (compare-and-set)."
    )


class RollbackRequest(BaseModel):
    """Optional body of a rollback; without ``version``, production goes back to the version
    its last promotion replaced (refused right after another rollback)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(
        default=None, ge=1, description="A version that was production before, to go back to."
    )


class AliasMovePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model: str
    alias: str
    from_version: int | None
    to_version: int
    seconds: float = Field(description="Load, warm-up on every replica, and the flip.")
    changed: bool = Field(
        default=True, description="False when the version was production already: nothing moved."
    )
    warning: str | None = Field(
        default=None,
        description="A step after the move failed (re-pinning replicas); production did move.",
    )
