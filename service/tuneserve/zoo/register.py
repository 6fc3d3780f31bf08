"""Register built starter models as version 1 / ``production`` of their registry model."""

from __future__ import annotations

from dataclasses import dataclass

from tuneserve.registry import ArtifactStore, Registry, weights_sha256
from tuneserve.registry.refs import PRODUCTION
from tuneserve.settings import Settings
from tuneserve.zoo.build import BuildReport
from tuneserve.zoo.recipes import RECIPES


@dataclass(frozen=True)
class Registration:
    name: str
    version: int | None
    outcome: str  # "registered" | "already registered" | "kept existing versions"


def register_starter_model(
    report: BuildReport, settings: Settings, registry: Registry, store: ArtifactStore
) -> Registration:
    """Upload a built model and make it production, unless the registry already has one.

    A registry that already serves versions of this model (fine-tuned ones, say) is the
    source of truth: a rebuilt starter model never replaces them.
    """
    recipe = RECIPES[report.name]
    registry.create_model(report.name, report.task, report.description or recipe.description)
    model_dir = settings.zoo.dir / report.name
    sha256 = weights_sha256(model_dir)
    versions = registry.list_versions(report.name)
    for version in versions:
        if version.sha256 == sha256:
            return Registration(report.name, version.version, "already registered")
    if versions:
        return Registration(report.name, None, "kept existing versions")
    key = f"{report.name}/{sha256[:16]}"
    uri = (
        store.put_dir(model_dir, key)
        if not store.exists(store.uri_for(key))
        else store.uri_for(key)
    )
    version = registry.register_version(
        report.name,
        artifact_uri=uri,
        sha256=sha256,
        metrics=report.metrics,
        lineage={"source": "zoo", "profile": report.profile, "fingerprint": report.fingerprint},
        variants=report.variants,
    )
    registry.move_alias(report.name, PRODUCTION, version.version, None, reason="starter model")
    return Registration(report.name, version.version, "registered")
