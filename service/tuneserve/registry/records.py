"""The registry's records as plain frozen dataclasses: rows never leave ``registry/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tuneserve.registry.db import AliasHistoryRow, ModelRow, VersionRow
from tuneserve.registry.refs import derived_name


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str
    description: str
    created_at: datetime
    aliases: dict[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    task: str
    artifact_uri: str
    sha256: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    base_version: int | None
    created_at: datetime
    variants: dict[str, Any] = field(default_factory=dict)  # verdict per optimised variant
    aliases: tuple[str, ...] = ()  # the aliases pointing at it (when listed with them)

    @property
    def weights_base(self) -> tuple[str, str] | None:
        """For a LoRA version (its artifact an adapter), the (URI, sha256) of the full
        weights it runs on, from its lineage; None for a version with weights of its own."""
        adapter = self.lineage.get("adapter")
        return (adapter["artifact_uri"], adapter["sha256"]) if adapter else None


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    from_version: int | None
    to_version: int
    moved_at: datetime
    reason: str


def model_info(row: ModelRow, aliases: dict[str, int] | None = None) -> ModelInfo:
    return ModelInfo(
        name=row.name,
        task=row.task,
        description=row.description,
        created_at=row.created_at,
        aliases=aliases or {},
    )


def version_info(row: VersionRow, aliases: tuple[str, ...] = ()) -> VersionInfo:
    return VersionInfo(
        model=row.model_name,
        version=row.version,
        task=row.task,
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        metrics=dict(row.metrics),
        lineage=dict(row.lineage),
        variants=dict(row.variants or {}),
        base_version=row.base_version,
        created_at=row.created_at,
        aliases=aliases,
    )


def alias_move(row: AliasHistoryRow) -> AliasMove:
    return AliasMove(
        model=row.model_name,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        moved_at=row.moved_at,
        reason=row.reason,
    )


@dataclass(frozen=True)
class FileInfo:
    id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    rows: int
    task: str
    labels: list[str]
    uri: str
    owner: str
    created_at: datetime


@dataclass(frozen=True)
class JobInfo:
    id: str
    model: str
    base_version: int
    task: str
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    promotion: dict[str, Any]
    suffix: str | None
    owner: str
    status: str
    attempts: int
    cancel_requested: bool
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    fine_tuned_model: str | None
    trained_tokens: int | None
    trained_examples: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def seed(self) -> int | None:
        return self.hyperparameters.get("seed")

    @property
    def output_model(self) -> str:
        """Where the job's version goes: its base model, or the new model its suffix names."""
        return derived_name(self.model, self.suffix) if self.suffix else self.model


@dataclass(frozen=True)
class EventInfo:
    id: str
    job_id: str
    level: str
    type: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class CheckpointInfo:
    id: str
    job_id: str
    epoch: int
    step: int
    uri: str
    metrics: dict[str, Any]
    created_at: datetime


def record_of(cls, row, **given: Any) -> Any:
    """A record dataclass filled from the row attributes of the same names, except ``given``."""
    fields = cls.__dataclass_fields__
    return cls(**{name: getattr(row, name) for name in fields if hasattr(row, name)} | given)
