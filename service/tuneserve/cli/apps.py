"""The ``tuneserve`` command's groups; each command module registers its commands on them."""

from __future__ import annotations

import typer

from tuneserve.k8s_render import k8s_app

app = typer.Typer(
    help="Model serving with online fine-tuning on Ray: serve it, call it, fine-tune on it.",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="The model registry of a service (HTTP), and the starter models (build).",
    no_args_is_help=True,
)
files_app = typer.Typer(help="Training files of a service.", no_args_is_help=True)
jobs_app = typer.Typer(help="Fine-tuning jobs of a service.", no_args_is_help=True)
db_app = typer.Typer(help="The registry database's schema (Alembic).", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys of tenants, in the registry database itself (no service needed).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.add_typer(files_app, name="files")
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(k8s_app, name="k8s")
