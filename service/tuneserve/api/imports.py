"""Importing a model a user already has (``POST /v1/models``): the request and the answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# where a model may come from: object stores, this machine, the hub. Not http(s), ftp or
# ssh: an import must not make the cluster call arbitrary hosts on a caller's behalf.
SOURCE_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "memory", "hf")


class ImportModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=2048,
        description="A Hugging Face model folder (safetensors) as a path the service can "
        "read, any fsspec URL (`s3://bucket/models/x`, `file:///…`), or a hub id with a "
        "pinned revision (`hf://org/name@<commit or tag>`, where the cluster reaches the hub).",
        examples=["s3://models/sst2-minilm", "hf://org/name@v1.0"],
    )
    name: str = Field(
        min_length=1,
        max_length=100,
        description="The registry model it becomes a version of (created if new).",
    )
    task: str | None = Field(
        default=None,
        description="The task it serves; default: inferred from `config.architectures`.",
    )
    alias: Literal["production", "candidate"] | None = Field(
        default=None,
        description="Point this alias at the new version; only for a model that has no "
        "version under that alias yet (otherwise promote it: replicas warm it first).",
    )
    description: str | None = Field(default=None, max_length=500)

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, source: str) -> str:
        scheme, found, _ = source.partition("://")
        if found and scheme not in SOURCE_SCHEMES:
            raise ValueError(f"scheme {scheme!r} is not imported from; use one of {SOURCE_SCHEMES}")
        if not found and not source.startswith("/"):  # relative to which worker's folder?
            raise ValueError("a path on the service's machines must be absolute")
        return source


class ImportedModel(BaseModel):
    """The version an import registered, and what the checks found."""

    object: Literal["model.version"] = "model.version"
    model: str
    version: int
    task: str
    architecture: str
    labels: list[str] = Field(description="The head's labels in id order (labelled tasks).")
    sha256: str = Field(description="Of the weights; checked whenever the version is loaded.")
    size_bytes: int
    alias: str | None
    left_behind: list[str] = Field(description="Pickled weights next to safetensors, not copied.")
