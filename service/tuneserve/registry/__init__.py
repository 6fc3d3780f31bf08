"""Model registry (names, immutable versions, aliases with history) and the artifact store."""

from tuneserve.registry.catalog import AliasMove, ModelInfo, Registry, VersionInfo
from tuneserve.registry.deployment import ensure_schema, refuse_node_local
from tuneserve.registry.store import ArtifactStore, files_sha256, weights_sha256
from tuneserve.settings import RegistrySettings

__all__ = [
    "AliasMove",
    "ArtifactStore",
    "ModelInfo",
    "Registry",
    "VersionInfo",
    "connect",
    "ensure_schema",
    "files_sha256",
    "refuse_node_local",
    "weights_sha256",
]


def connect(settings: RegistrySettings) -> tuple[Registry, ArtifactStore]:
    """The registry and artifact store of a deployment's ``registry`` settings."""
    return (
        Registry.from_url(settings.database_url, migrate=settings.migrate_on_start),
        ArtifactStore(settings.artifact_url, settings.artifact_cache_dir),
    )
