"""``tuneserve models list|show|versions|promote|rollback|import``: a service's registry.

``--local`` on ``list`` and ``import`` acts on the settings' registry database directly,
without a service: how a registry is seeded before the first deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneserve.cli.apps import models_app
from tuneserve.cli.local import local_settings
from tuneserve.cli.remote import JsonFlag, console, errors, print_json, service, table

LocalFlag = Annotated[
    bool, typer.Option("--local", help="The settings' registry database, not a service.")
]


@models_app.command("list")
def models_list(local: LocalFlag = False, json: JsonFlag = False) -> None:
    """Models with their task and aliases."""
    if local:
        _local_list()
        return
    with service() as client:
        models = client.models.list()
    if json:
        print_json(models)
        return
    shown = table("model", "task", "aliases", "description")
    for model in models.data:
        shown.add_row(model.id, model.task, _aliases(model.aliases), model.description)
    console.print(shown)


@models_app.command("show")
def models_show(name: str, json: JsonFlag = False) -> None:
    """One model, and its versions."""
    with service() as client:
        model, versions = client.models.get(name), client.models.versions(name)
    if json:
        print_json({"model": model.model_dump(), "versions": versions.model_dump()["data"]})
        return
    console.print(f"[bold]{model.id}[/bold] ({model.task}) {model.description}")
    console.print(f"aliases: {_aliases(model.aliases) or 'none'}")
    console.print(_versions_table(versions.data))


@models_app.command("versions")
def models_versions(name: str, json: JsonFlag = False) -> None:
    """Every version of a model: when, from what, its metrics, the aliases on it."""
    with service() as client:
        versions = client.models.versions(name)
    if json:
        print_json(versions)
    else:
        console.print(_versions_table(versions.data))


@models_app.command("promote")
def models_promote(
    name: str,
    version: int,
    expected_from: Annotated[
        int | None, typer.Option(help="Refuse unless production is this version now.")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Warm VERSION on every replica, then make it production (an admin key)."""
    with service() as client:
        moved = client.models.promote(name, version, expected_from=expected_from)
    _moved(moved, json)


@models_app.command("rollback")
def models_rollback(
    name: str,
    version: Annotated[int | None, typer.Option(help="Back to this version instead.")] = None,
    json: JsonFlag = False,
) -> None:
    """Production back to the version its last promotion replaced (an admin key)."""
    with service() as client:
        moved = client.models.rollback(name, version)
    _moved(moved, json)


@models_app.command("import")
def models_import(
    source: Annotated[str, typer.Argument(help="Folder, fsspec URL, GGUF file, hf://org/n@rev")],
    name: Annotated[str, typer.Option(help="The registry model it becomes a version of.")],
    task: Annotated[str | None, typer.Option(help="Default: from config.architectures.")] = None,
    alias: Annotated[str | None, typer.Option(help="production or candidate, if unset.")] = None,
    local: LocalFlag = False,
    json: JsonFlag = False,
) -> None:
    """Import a model you have as a new version. The service reads SOURCE: a path must be
    one its machines see (a relative path is made absolute here)."""
    if "://" not in source:  # a folder or file as this shell names it
        source = str(Path(source).resolve())
    if local:
        done = _local_import(source, name, task, alias)
    else:
        with service() as client:
            done = client.models.import_(source, name, task=task, alias=alias)
    if json:
        print_json(done if isinstance(done, dict) else done.model_dump())
        return
    labels = f", labels {', '.join(done.labels)}" if done.labels else ""
    left = f"; left behind (pickled): {', '.join(done.left_behind)}" if done.left_behind else ""
    print(f"imported {done.model}@{done.version}: {done.task} ({done.architecture}{labels}){left}")


def _local_list() -> None:
    from tuneserve.registry import Registry

    registry = Registry.from_url(local_settings(None).registry.database_url)
    shown = table("model", "task", "versions", "aliases")
    for model in registry.list_models():
        versions = ", ".join(str(v.version) for v in registry.list_versions(model.name))
        shown.add_row(model.name, model.task, versions, _aliases(registry.aliases(model.name)))
    console.print(shown)


def _local_import(source: str, name: str, task: str | None, alias: str | None) -> Any:
    from tuneserve.api.imports import ImportModelRequest
    from tuneserve.control.model_import import import_with
    from tuneserve.errors import TuneserveError

    try:
        request = ImportModelRequest(source=source, name=name, task=task, alias=alias)
        return import_with(local_settings(None), request)
    except (TuneserveError, ValueError) as error:  # a pydantic ValidationError is a ValueError
        errors.print(f"[red]refused: {getattr(error, 'message', error)}[/red]")
        raise typer.Exit(2) from None


def _moved(moved: Any, json: bool) -> None:
    if json:
        print_json(moved)
        return
    if not moved.changed:
        console.print(f"{moved.model}: version {moved.to_version} is {moved.alias} already")
    else:
        console.print(
            f"{moved.model}: {moved.alias} {moved.from_version} → {moved.to_version} "
            f"in {moved.seconds:.2f} s"
        )
    if moved.warning:
        console.print(f"[yellow]{moved.warning}[/yellow]")


def _versions_table(versions: list) -> Table:
    shown = table("version", "created", "aliases", "from", "metrics")
    for v in versions:
        created = datetime.fromisoformat(v.created_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        source = v.lineage.get("job") or v.lineage.get("source") or ""
        base = f"v{v.base_version} " if v.base_version else ""
        shown.add_row(str(v.version), created, ", ".join(v.aliases), base + source, _metrics(v))
    return shown


def _metrics(version: Any) -> str:
    shown = [(k, v) for k, v in version.metrics.items() if isinstance(v, int | float)]
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown)


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}→{version}" for alias, version in sorted(aliases.items()))
