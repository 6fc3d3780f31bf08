"""``tuneserve`` command line: build the starter models, list the registry, run the service."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuneserve.k8s_render import k8s_app
from tuneserve.settings import Settings, ZooProfile

app = typer.Typer(help="Model serving with online fine-tuning on Ray.", no_args_is_help=True)
models_app = typer.Typer(help="Starter models and the model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")
db_app = typer.Typer(help="The registry database's schema (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(k8s_app, name="k8s")
console = Console()


def _settings(profile: ZooProfile | None) -> Settings:
    return Settings(zoo={"profile": profile}) if profile else Settings()


def build_and_register(settings: Settings, names: list[str] | None, force: bool) -> None:
    """Build the missing starter models with a progress bar, register them, print a table."""
    from tuneserve.registry import connect
    from tuneserve.zoo.build import build_all
    from tuneserve.zoo.recipes import RECIPES
    from tuneserve.zoo.register import register_starter_model

    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bars: dict[str, int] = {}

        def on_step(name: str, step: int, total: int, loss: float) -> None:
            if name not in bars:
                bars[name] = progress.add_task(name, total=total, loss="")
            progress.update(bars[name], completed=step, loss=f"loss {loss:.3f}")

        reports = build_all(settings, names, force=force, on_step=on_step)
    registry, store = connect(settings.registry)
    table = Table(title=f"starter models ({settings.zoo.profile} profile) in {settings.zoo.dir}")
    for column in ("model", "task", "params", "size", "build", "metric", "floor", "registry"):
        table.add_column(column)
    for report in reports:
        registration = register_starter_model(report, settings, registry, store)
        metric, floor = RECIPES[report.name].floor
        value = float(report.metrics[metric])
        build = "cached" if report.cached else f"{report.build_seconds:.0f} s"
        verdict = "ok" if value >= floor else ("below" if settings.zoo.profile == "full" else "n/a")
        table.add_row(
            report.name,
            report.task,
            f"{report.parameters / 1e6:.2f} M",
            f"{report.size_bytes / 2**20:.1f} MiB",
            build,
            f"{metric} {value:.3f}",
            f"{floor} {verdict}",
            f"v{registration.version} {registration.outcome}",
        )
    console.print(table)


@models_app.command("build")
def models_build(
    profile: Annotated[ZooProfile | None, typer.Option(help="full or tiny")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Build just these models.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when cached.")] = False,
) -> None:
    """Build (if missing or outdated) and register the five starter models."""
    build_and_register(_settings(profile), only, force)


@models_app.command("list")
def models_list() -> None:
    """Models in the registry with their versions, aliases and metrics."""
    from tuneserve.registry import Registry

    registry = Registry.from_url(_settings(None).registry.database_url)
    table = Table(title="registry")
    for column in ("model", "task", "versions", "aliases"):
        table.add_column(column)
    for model in registry.list_models():
        versions = ", ".join(str(v.version) for v in registry.list_versions(model.name))
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(registry.aliases(model.name).items()))
        table.add_row(model.name, model.task, versions, aliases)
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the registry database (TUNESERVE_REGISTRY__DATABASE_URL) to this release."""
    from tuneserve.registry import schema
    from tuneserve.registry.db import make_engine

    engine = make_engine(_settings(None).registry.database_url, migrate=False, check=False)
    before, after = schema.upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"{where} is at revision {after} already")
    else:
        console.print(f"{where} upgraded: revision {before or 'none'} → {after}")


@db_app.command("current")
def db_current() -> None:
    """The database's schema revision and the one this release needs (exit 1 if behind)."""
    from tuneserve.registry import schema
    from tuneserve.registry.db import make_engine

    engine = make_engine(_settings(None).registry.database_url, migrate=False, check=False)
    with engine.connect() as connection:
        current = schema.current_revision(connection)
    head = schema.head_revision()
    console.print(f"database: {current or 'none'}   this release: {head}")
    if current != head:
        raise typer.Exit(1)


@app.command()
def run(
    profile: Annotated[ZooProfile | None, typer.Option(help="full or tiny")] = None,
) -> None:
    """Build missing starter models, then serve them until Ctrl-C."""
    settings = _settings(profile)
    build_and_register(settings, None, force=False)
    serve_forever(settings)


@app.command()
def samples(
    profile: Annotated[ZooProfile | None, typer.Option(help="full or tiny")] = None,
) -> None:
    """Answer one sample request per starter model, in-process (no Ray)."""
    from tuneserve.zoo.samples import sample_predictions

    for name, item, output in sample_predictions(_settings(profile)):
        console.print(f"[bold]{name}[/bold] {item}\n  → {output}")


def serve_forever(settings: Settings) -> None:
    """Start Ray Serve with the application, print where it is, stop cleanly on Ctrl-C."""
    import os
    import signal
    import sys
    import threading

    from tuneserve.serving import local

    stop = threading.Event()
    try:
        local.connect_ray(settings)
        # after ray.init, which installs handlers of its own, and before the API answers:
        # Ctrl-C and SIGTERM (how Kubernetes stops a pod) both end in the shutdown below
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        url = local.deploy(settings)
        console.print(f"tuneserve is up at [bold]{url}[/bold]")
        console.print(f"  API docs:  {url}/docs      readiness: {url}/readyz")
        console.print("  stop it with Ctrl-C")
        stop.wait()
    finally:
        console.print("shutting down…")
        local.stop()
    console.print("stopped")
    # Ray is down; skip interpreter teardown, where Ray's leftover native threads can abort
    # the process (SIGABRT) after a clean shutdown
    sys.stdout.flush()
    os._exit(0)
