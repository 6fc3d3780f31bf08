"""Session fixtures: the tiny starter models, built once and cached between runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuneserve.settings import Settings
from tuneserve.tasks import handler_for
from tuneserve.tasks.base import TaskHandler
from tuneserve.zoo.build import BuildReport, build_all

ROOT = Path(__file__).resolve().parents[1]
# Built models survive between runs (a fingerprint says when to rebuild); state does not.
ZOO_CACHE = ROOT / ".tuneserve" / "test-zoo"


@pytest.fixture(scope="session")
def zoo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("tuneserve"),
        zoo_cache_dir=ZOO_CACHE,
        zoo_profile="tiny",
        max_sequence_length=128,
    )


@pytest.fixture(scope="session")
def starter_models(zoo_settings: Settings) -> dict[str, BuildReport]:
    """Every tiny starter model, built (or taken from the cache) once per session."""
    return {report.name: report for report in build_all(zoo_settings)}


@pytest.fixture(scope="session")
def load_handler(starter_models: dict[str, BuildReport], zoo_settings: Settings):
    """A function that loads a fresh handler of a starter model (training mutates it)."""

    def load(name: str) -> TaskHandler:
        handler_class = handler_for(starter_models[name].task)
        return handler_class.load(
            zoo_settings.zoo_dir / name, max_length=zoo_settings.max_sequence_length
        )

    return load


@pytest.fixture(scope="session")
def handlers(load_handler) -> dict[str, TaskHandler]:
    """One shared, inference-only handler per starter model."""
    names = ("sentiment", "entities", "qa", "translate-en-de", "chat")
    return {name: load_handler(name) for name in names}
