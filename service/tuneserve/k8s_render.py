"""``tuneserve k8s render``: copy each Serve config into the kustomize overlay that ships it.

A RayService carries its Serve config as one YAML string (``spec.serveConfigV2``). The source
of truth is ``deployments/*.yaml``; kustomize reads no file outside an overlay's folder (and
refuses symlinks that leave it), so each overlay holds a byte-identical copy that its
``configMapGenerator`` + ``replacements`` put into ``serveConfigV2``. This module writes those
copies, and with ``--check`` fails when one is stale, after checking that the source is a
Serve config whose every application builds a valid ``Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tuneserve.serving.names import routed_tasks, task_app_name
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog

IMPORT_PATH = "tuneserve.serving.app:app_builder"  # the gateway's application
TASK_IMPORT_PATH = "tuneserve.serving.app:task_app_builder"  # each task's application

PATHS = {IMPORT_PATH, TASK_IMPORT_PATH}

# overlay copy → its source, relative to the repository root: the one list of renders
RENDERS: dict[str, str] = {
    "k8s/overlays/prod/serve-config.yaml": "deployments/production.yaml",
    "k8s/overlays/dev/serve-config.yaml": "deployments/dev-cluster.yaml",
}

k8s_app = typer.Typer(help="Kubernetes manifests (k8s/): render and check.", no_args_is_help=True)


@dataclass(frozen=True)
class Render:
    """One overlay copy of a Serve config, and whether it matches its source."""

    source: Path
    target: Path
    current: bool


def load_serve_config(path: Path) -> dict[str, Any]:
    """Parse a Serve config file, naming the file in the error a reader has to fix."""
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict) or not config.get("applications"):
        raise ValueError(f"{path}: not a Serve config (no `applications` list)")
    return config


def application_settings(config: dict[str, Any]) -> list[Settings]:
    """The ``Settings`` of each tuneserve deployment in a Serve config: one per gateway.

    The same call the Serve controller makes (``app_builder(args)`` → ``Settings(**args)``),
    so a misspelt or misplaced field fails here, before a cluster refuses the deployment.
    Each served task must have its own application (``task_app_builder``) at its route, under
    the gateway's prefix, with the gateway's settings (a YAML anchor: one copy to edit).
    """
    applications = config["applications"]
    unknown = [a.get("name", "?") for a in applications if a.get("import_path") not in PATHS]
    if unknown:
        raise ValueError(f"applications {unknown}: import_path must be one of {sorted(PATHS)}")
    gateways = [a for a in applications if a["import_path"] == IMPORT_PATH]
    tasks = [a for a in applications if a["import_path"] == TASK_IMPORT_PATH]
    built = [Settings(**(gateway.get("args") or {})) for gateway in gateways]
    claimed: set[str] = set()
    for gateway, settings in zip(gateways, built, strict=True):
        claimed |= _check_task_apps(gateway, settings, tasks)
    stray = [a.get("name", "?") for a in tasks if a.get("name") not in claimed]
    if stray:
        raise ValueError(f"task applications {stray} belong to no gateway's settings")
    return built


def _check_task_apps(gateway: dict, settings: Settings, tasks: list[dict]) -> set[str]:
    """The names of the task applications of one gateway, each checked against it."""
    by_name = {application.get("name"): application for application in tasks}
    base = (gateway.get("route_prefix") or "/").rstrip("/")
    catalog = TaskCatalog.load(settings.tasks.modules)
    names = set()
    for task, path in routed_tasks(catalog, settings.serving.served_tasks).items():
        name = task_app_name(settings.app_name, task)
        application = by_name.get(name)
        if application is None:
            raise ValueError(f"task {task!r} is served but has no application {name!r}")
        args = application.get("args") or {}
        if args.get("task") != task or args.get("settings") != gateway.get("args"):
            raise ValueError(
                f"application {name!r}: args must be {{task: {task}, settings: <the "
                f"settings of {settings.app_name!r}>}} (a YAML alias of them)"
            )
        if application.get("route_prefix") != base + path:
            raise ValueError(f"application {name!r}: route_prefix must be {base + path}")
        names.add(name)
    return names


def plan(root: Path) -> list[Render]:
    """Every overlay copy with its source, each marked current or stale (byte for byte)."""
    renders = []
    for target, source in RENDERS.items():
        source_path, target_path = root / source, root / target
        current = target_path.is_file() and target_path.read_bytes() == source_path.read_bytes()
        renders.append(Render(source_path, target_path, current))
    return renders


def render(root: Path, check: bool = False) -> list[Render]:
    """Validate every source; unless ``check``, rewrite the stale copies. Returns the plan."""
    renders = plan(root)
    for item in renders:
        try:
            application_settings(load_serve_config(item.source))
        except ValueError as error:  # pydantic's ValidationError included
            raise ValueError(f"{item.source}: {error}") from error
        if not check and not item.current:
            item.target.write_bytes(item.source.read_bytes())
    return renders


def repository_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding deployments/ and k8s/."""
    for folder in (start, *start.parents):
        if (folder / "deployments").is_dir() and (folder / "k8s").is_dir():
            return folder
    raise typer.BadParameter(f"no deployments/ and k8s/ at or above {start}; pass --root")


@k8s_app.command("render")
def render_command(
    check: Annotated[
        bool, typer.Option(help="Change nothing; exit 1 if a copy differs from its source.")
    ] = False,
    root: Annotated[Path | None, typer.Option(help="Repository root (default: found)")] = None,
) -> None:
    """Copy deployments/*.yaml into the overlays' serve-config.yaml (kustomize reads those)."""
    root = root or repository_root(Path.cwd())
    try:
        renders = render(root, check=check)
    except ValueError as error:
        typer.echo(f"invalid Serve config: {error}", err=True)
        raise typer.Exit(2) from error
    stale = [item for item in renders if not item.current]
    for item in renders:
        state = "current" if item.current else ("stale" if check else "written")
        typer.echo(f"{state:8} {item.target.relative_to(root)} ← {item.source.relative_to(root)}")
    if check and stale:
        typer.echo("run `tuneserve k8s render` and commit the copies", err=True)
        raise typer.Exit(1)
