"""The code's shape is checked, not hoped for: layers, torch-free contract, size budgets."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from ray import cloudpickle
from tuneserve.serving.app import build_gateway
from tuneserve.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "service" / "tuneserve"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# Alembic revisions are schema data, written once and never edited: one table per statement.
REVISIONS = PACKAGE / "registry" / "migrations" / "versions"


def test_import_linter_contracts_are_kept():
    """Layers, the torch-free contract and no cycles (pyproject's [tool.importlinter])."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    run = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 kept, 0 broken" in run.stdout


def loaded_by(modules: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` importing ``modules`` loads, in a fresh interpreter."""
    return loaded_after(f"import {modules}", watched)


def loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` running ``code`` loads, in a fresh interpreter."""
    report = f"import sys; print([m for m in {watched!r} if m in sys.modules])"
    run = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return ast.literal_eval(run.stdout)


def test_the_public_contract_loads_no_model_library():
    """Importing the schemas (and the task specs they re-export) in a fresh interpreter."""
    schemas = "tuneserve.api.tasks, tuneserve.api.openai, tuneserve.api.fine_tuning"
    libraries = ("torch", "transformers", "ray", "sqlalchemy")
    assert loaded_by(f"{schemas}, tuneserve.tasks.catalog", libraries) == []


def test_the_runners_handle_loads_no_training_pipeline():
    """Ray imports an actor's class module wherever a handle of it is unpickled: the
    gateway replicas and Ray Train's processes load the runner's, and must not pay for
    torch, transformers or Ray Train to do so (it cost each job's controller 5 to 7 s)."""
    pipeline = ("torch", "transformers", "ray.train", "peft", "datasets")
    assert loaded_by("tuneserve.training.runner, tuneserve.training.identity", pipeline) == []


def test_a_gateway_replica_loads_no_model_library(tmp_path: Path):
    """A gateway replica unpickles its deployment (the class, its FastAPI routes, its
    arguments) and so imports every module they name. It serves the control plane: torch
    there cost 632 MB resident in each replica and 5 s more to start one."""
    deployment = build_gateway(Settings(data_dir=tmp_path))._bound_deployment  # Serve's own
    bound = (deployment.func_or_class, deployment.init_args, deployment.init_kwargs)
    pickled = tmp_path / "gateway.pkl"
    pickled.write_bytes(cloudpickle.dumps(bound))
    unpickle = f"import pickle, pathlib; pickle.loads(pathlib.Path({str(pickled)!r}).read_bytes())"
    models = ("torch", "transformers", "peft", "ray.train", "datasets")
    assert loaded_after(unpickle, models) == []


def test_modules_and_functions_stay_within_their_budgets():
    too_long = []
    for path in sorted(p for p in PACKAGE.rglob("*.py") if not p.is_relative_to(REVISIONS)):
        source = path.read_text()
        name = path.relative_to(PACKAGE)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, too_long
