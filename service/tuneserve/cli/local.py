"""Commands that work here, on this machine's settings (``TUNESERVE_*``): run the service,
build the starter models, migrate the database, manage keys, collect garbage."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuneserve.cli.apps import app, db_app, keys_app, models_app
from tuneserve.settings import Settings, ZooProfile

console = Console()


def local_settings(profile: ZooProfile | None) -> Settings:
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
    build_and_register(local_settings(profile), only, force)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the registry database (TUNESERVE_REGISTRY__DATABASE_URL) to this release."""
    from tuneserve.registry import schema
    from tuneserve.registry.db import make_engine

    engine = make_engine(local_settings(None).registry.database_url, migrate=False, check=False)
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

    engine = make_engine(local_settings(None).registry.database_url, migrate=False, check=False)
    with engine.connect() as connection:
        current = schema.current_revision(connection)
    head = schema.head_revision()
    console.print(f"database: {current or 'none'}   this release: {head}")
    if current != head:
        raise typer.Exit(1)


def _key_store():
    from tuneserve.registry import Registry
    from tuneserve.registry.keys import KeyStore

    return KeyStore(Registry.from_url(local_settings(None).registry.database_url).engine)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant whose files and jobs it reaches.")],
    scope: Annotated[
        list[str], typer.Option(help="inference, fine_tune or admin; repeat for several.")
    ],
    name: Annotated[str, typer.Option(help="A note: who or what uses it.")] = "",
) -> None:
    """Create a key and print it: it is shown this once (only its hash is stored)."""
    from tuneserve.errors import TuneserveError

    try:
        info, key = _key_store().create(tenant, scope, name)
    except TuneserveError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"created {info.id} for tenant {info.tenant} ({', '.join(info.scopes)})")
    print(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="One tenant only.")] = None) -> None:
    """Every key (never its secret), revoked ones included."""
    table = Table(title="API keys")
    for column in ("id", "tenant", "scopes", "name", "created", "revoked"):
        table.add_column(column)
    for info in _key_store().list(tenant):
        revoked = f"{info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else ""
        created = f"{info.created_at:%Y-%m-%d %H:%M}"
        table.add_row(info.id, info.tenant, ", ".join(info.scopes), info.name, created, revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; gateways refuse it within auth.key_cache_ttl_s."""
    from tuneserve.errors import TuneserveError

    try:
        info = _key_store().revoke(key_id)
    except TuneserveError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"revoked {info.id} of tenant {info.tenant}")


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete old checkpoints and the artifacts no record needs (training.keep_checkpoints,
    gc_grace_s, gc_version_weights); safe while the service runs."""
    from tuneserve.registry import connect
    from tuneserve.registry.jobs import JobStore
    from tuneserve.training.retention import collect

    settings = local_settings(None)
    registry, store = connect(settings.registry)
    done = collect(settings, registry, JobStore(registry.engine), store, dry_run=dry_run)
    table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
    for column in ("kind", "artifact", "size", "why"):
        table.add_column(column)
    for removal in done.removals:
        table.add_row(removal.kind, removal.uri, f"{removal.bytes / 2**20:.1f} MiB", removal.why)
    console.print(table)
    verb = "would free" if dry_run else "freed"
    console.print(f"{len(done.removals)} item(s); {verb} {done.bytes / 2**20:.1f} MiB")
    for error in done.errors:
        console.print(f"[red]not deleted: {error}[/red]")
    if done.errors:
        raise typer.Exit(1)


@app.command()
def run(
    profile: Annotated[ZooProfile | None, typer.Option(help="full or tiny")] = None,
) -> None:
    """Build missing starter models, then serve them until Ctrl-C."""
    settings = local_settings(profile)
    build_and_register(settings, None, force=False)
    serve_forever(settings)


@app.command()
def samples(
    profile: Annotated[ZooProfile | None, typer.Option(help="full or tiny")] = None,
) -> None:
    """Answer one sample request per starter model, in-process (no Ray)."""
    from tuneserve.zoo.samples import sample_predictions

    for name, item, output in sample_predictions(local_settings(profile)):
        console.print(f"[bold]{name}[/bold] {item}\n  → {output}")


def serve_forever(settings: Settings) -> None:
    """Start Ray Serve with the application, print where it is, stop cleanly on Ctrl-C."""
    import os
    import signal
    import sys
    import threading

    from tuneserve.serving import local
    from tuneserve.serving.app import with_access_mode

    settings = with_access_mode(settings, settings.serving.host)
    if settings.auth.mode == "open":
        console.print(
            f"[yellow]warning: serving OPEN on {settings.serving.host}: no API keys, every "
            "caller is admin. `tuneserve keys create --tenant ops --scope admin` makes the "
            "next start require keys.[/yellow]"
        )
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
