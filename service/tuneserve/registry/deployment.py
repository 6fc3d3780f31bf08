"""Whether a deployment's registry settings can work where it runs: checked once, early.

A deployment that cannot work fails when it is built (``serve deploy``, ``tuneserve run``)
with a message that says what to set, not later in each replica with a stack trace.
"""

from __future__ import annotations

from tuneserve.errors import Misconfigured
from tuneserve.registry.catalog import Registry
from tuneserve.settings import RegistrySettings


def ensure_schema(settings: RegistrySettings) -> None:
    """Upgrade the schema (``migrate_on_start``) or refuse one that is behind."""
    Registry.from_url(settings.database_url, migrate=settings.migrate_on_start).engine.dispose()


def refuse_node_local(settings: RegistrySettings, nodes: list[dict]) -> None:
    """Refuse SQLite or a local artifact folder on a Ray cluster of several nodes.

    ``nodes`` is ``ray.nodes()``. Each node would open its own database file and folder:
    a version registered on one would not exist on the others.
    """
    alive = sum(1 for node in nodes if node.get("Alive"))
    local = []
    if settings.database_url.startswith("sqlite"):
        local.append(f"the registry database is SQLite ({settings.database_url})")
    if "://" not in settings.artifact_url or settings.artifact_url.startswith("file://"):
        local.append(f"artifacts are in a local folder ({settings.artifact_url})")
    if alive > 1 and local:
        raise Misconfigured(
            f"this Ray cluster has {alive} nodes, but {' and '.join(local)}: every node "
            "would see its own copy. Set TUNESERVE_REGISTRY__DATABASE_URL to a Postgres URL "
            "(postgresql+psycopg://user:password@host/db) and TUNESERVE_REGISTRY__ARTIFACT_URL "
            "to shared storage (s3://bucket/prefix).",
            param="registry",
        )
