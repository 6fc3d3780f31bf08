"""The one settings object, in sections; every knob readable from a ``TUNESERVE_*`` env var.

A section's field is ``TUNESERVE_<SECTION>__<FIELD>`` (``TUNESERVE_SERVING__MAX_BATCH_SIZE``).
Settings are built only in entry points (the CLI, the Serve app builder, tests) and passed
down; no module reads the environment on its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuneserve.settings.cluster import RaySettings
from tuneserve.settings.deployment import DeploymentOptions
from tuneserve.settings.guards import AuthSettings, LimitSettings, TenantQuotas
from tuneserve.settings.sections import (
    RegistrySettings,
    ServingSettings,
    TaskSettings,
    TelemetrySettings,
    VariantSettings,
    ZooProfile,
    ZooSettings,
)
from tuneserve.settings.training import TrainingSettings

__all__ = [
    "AuthSettings",
    "DeploymentOptions",
    "LimitSettings",
    "RaySettings",
    "RegistrySettings",
    "ServingSettings",
    "Settings",
    "TaskServerSettings",
    "TaskSettings",
    "TelemetrySettings",
    "TenantQuotas",
    "TrainingSettings",
    "VariantSettings",
    "ZooProfile",
    "ZooSettings",
]


class TaskServerSettings(BaseModel):
    """The sections a task-server replica reads, and nothing else."""

    tasks: TaskSettings
    registry: RegistrySettings
    serving: ServingSettings
    limits: LimitSettings
    telemetry: TelemetrySettings
    # a task server answers its own route (one hop): it checks the caller's key itself
    auth: AuthSettings
    admin_token: SecretStr | None


class Settings(BaseSettings):
    """Configuration of one tuneserve deployment (env prefix ``TUNESERVE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="TUNESERVE_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(
        default=Path(".tuneserve"),
        description="Root of local state: registry database, artifacts, zoo, Ray temp dir.",
    )
    app_name: str = Field(default="tuneserve", description="Serve application name.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="A bootstrap admin key ('Authorization: Bearer <token>'), from a secret: "
        "how the first API keys are made on a cluster. Every route accepts it as admin.",
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    zoo: ZooSettings = Field(default_factory=ZooSettings)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        """Every unset location, under data_dir."""
        self.data_dir = self.data_dir.expanduser().resolve()
        registry = self.registry
        registry.database_url = (
            registry.database_url or f"sqlite:///{self.data_dir / 'registry.db'}"
        )
        registry.artifact_url = registry.artifact_url or str(self.data_dir / "artifacts")
        registry.artifact_cache_dir = registry.artifact_cache_dir or self.data_dir / "cache"
        self.training.checkpoint_url = (
            self.training.checkpoint_url or f"{registry.artifact_url.rstrip('/')}/checkpoints"
        )
        self.zoo.cache_dir = self.zoo.cache_dir or self.data_dir / "zoo"
        self.zoo.corpora_dir = self.zoo.corpora_dir or self.data_dir / "corpora"
        self.ray.temp_dir = self.ray.temp_dir or self.data_dir / "ray"
        return self

    def updated(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; a section's changes merge into it."""
        values = self.model_dump()
        for name, change in changes.items():
            values[name] = values[name] | change if isinstance(change, dict) else change
        return Settings.model_validate(values)

    def for_task_server(self) -> TaskServerSettings:
        return TaskServerSettings(
            tasks=self.tasks,
            registry=self.registry,
            serving=self.serving,
            limits=self.limits,
            telemetry=self.telemetry,
            auth=self.auth,
            admin_token=self.admin_token,
        )

    def fingerprint(self) -> str:
        """A short hash of every setting but the admin token: equal settings, equal prints.

        A long-lived part started with other settings (the job runner, after a redeploy)
        compares prints to know it is out of date.
        """
        values = self.model_dump(mode="json", exclude={"admin_token"})
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
