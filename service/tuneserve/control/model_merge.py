"""Merging a LoRA version into a full one: ``POST /v1/models/{name}/versions/{v}/merge``.

A merged version has weights of its own (the adapter folded into its base's), so it needs
no resident base, serves at a plain model's speed, and can be exported or imported
elsewhere. It is a new version of the same model with the adapter's metrics (PEFT's merge
is exact up to float rounding; tests/test_lora.py checks the outputs); no alias moves:
promote it like any version.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tuneserve.api.tasks import VersionPublic
from tuneserve.errors import InvalidRequest
from tuneserve.registry import ArtifactStore, Registry, VersionInfo, connect, weights_sha256
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.handlers.lora import load


def merge_with(settings: Settings, name: str, number: int) -> VersionPublic:
    """``merge_version`` on the registry, store and tasks that ``settings`` name."""
    registry, store = connect(settings.registry)
    try:
        catalog = TaskCatalog.load(settings.tasks.modules)
        return merge_version(registry, store, catalog, settings, name, number)
    finally:
        registry.engine.dispose()


def merge_version(
    registry: Registry,
    store: ArtifactStore,
    catalog: TaskCatalog,
    settings: Settings,
    name: str,
    number: int,
) -> VersionPublic:
    """Register ``name@number`` (a LoRA version) merged into its base as a new version."""
    version = registry.get_version(name, number)
    if version.weights_base is None:
        raise InvalidRequest(
            f"{name}@{number} has weights of its own (it is not a LoRA version): nothing to merge",
            param="version",
        )
    spec = catalog.get(version.task)
    adapter = store.verified_path(version.artifact_uri, version.sha256)
    base = store.verified_path(*version.weights_base)
    options = {"max_length": settings.limits.max_sequence_length}
    merged = load(spec.handler_class(), base, adapter, merge=True, **options)
    with tempfile.TemporaryDirectory(dir=_staging(settings)) as folder:
        merged.save(Path(folder))
        sha256 = weights_sha256(Path(folder))
        uri = store.put_dir(Path(folder), f"{name}/merged-{sha256[:16]}")
    lineage = {key: value for key, value in version.lineage.items() if key != "adapter"}
    registered = registry.register_version(
        name,
        artifact_uri=uri,
        sha256=sha256,
        metrics=version.metrics,
        base_version=number,
        lineage=lineage | {"merged_from": number, "adapter_of": _weights_of(version)},
    )
    return VersionPublic.model_validate(registered)


def _weights_of(version: VersionInfo) -> dict:
    adapter = version.lineage["adapter"]
    return {"model": adapter["model"], "version": adapter["version"]}


def _staging(settings: Settings) -> Path:
    folder = Path(settings.data_dir) / "merges"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
