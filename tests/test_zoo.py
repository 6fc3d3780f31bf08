"""Starter models: generated data, cached builds, registration, and the CLI around them."""

from __future__ import annotations

import pytest
from tuneserve.cli import app
from tuneserve.registry import connect
from tuneserve.tasks.ner import iob2_spans
from tuneserve.zoo.build import build_all
from tuneserve.zoo.data import dialogues, entities, qa, sentiment, translation
from tuneserve.zoo.data.common import split_list
from tuneserve.zoo.recipes import RECIPES
from tuneserve.zoo.register import register_starter_model
from typer.testing import CliRunner


def test_split_list_partitions_values():
    values = list(range(10))
    train, heldout = split_list(values, "train"), split_list(values, "heldout")
    assert sorted(train + heldout) == values and not set(train) & set(heldout)


@pytest.mark.parametrize("module", [sentiment, entities, qa, translation, dialogues])
def test_generators_are_deterministic_and_valid_rows(module):
    name = next(r.name for r in RECIPES.values() if r.data is module)
    row_class = RECIPES[name].spec.Row
    rows = module.generate("train", 50, seed=1)
    assert rows == module.generate("train", 50, seed=1)
    assert rows != module.generate("train", 50, seed=2)
    for row in rows + module.generate("heldout", 50, seed=1):
        row_class(**row)  # every generated row passes its task's training schema


def test_heldout_entities_use_other_names_than_training():
    def names(split):
        found = set()
        for row in entities.generate(split, 300, seed=1):
            for kind, first, last in iob2_spans(row["tags"]):
                found.add((kind, " ".join(row["tokens"][first : last + 1])))
        return found

    assert not names("heldout") & names("train")


def test_heldout_translation_templates_are_unseen():
    train = {r["source"] for r in translation.generate("train", 2000, seed=1)}
    heldout = translation.generate("heldout", 200, seed=1)
    assert not train & {r["source"] for r in heldout}


def test_tiny_sentiment_is_good_enough_to_gate_against(starter_models):
    assert starter_models["sentiment"].metrics["accuracy"] >= 0.90


def test_builds_are_cached_by_fingerprint(starter_models, zoo_settings):
    again = {r.name: r for r in build_all(zoo_settings)}
    for name, report in starter_models.items():
        assert again[name].cached
        assert again[name].fingerprint == report.fingerprint


def test_registration_is_idempotent_and_never_replaces_versions(
    starter_models, zoo_settings, tmp_path
):
    settings = zoo_settings.updated(
        data_dir=tmp_path,
        registry={
            "database_url": f"sqlite:///{tmp_path}/r.db",
            "artifact_url": str(tmp_path / "artifacts"),
        },
    )
    registry, store = connect(settings.registry)
    report = starter_models["sentiment"]
    first = register_starter_model(report, settings, registry, store)
    assert (first.version, first.outcome) == (1, "registered")
    assert registry.aliases("sentiment") == {"production": 1}
    version = registry.get_version("sentiment", 1)
    assert version.metrics["accuracy"] == report.metrics["accuracy"]
    assert store.local_path(version.artifact_uri).joinpath("config.json").is_file()
    again = register_starter_model(report, settings, registry, store)
    assert (again.version, again.outcome) == (1, "already registered")
    assert len(registry.list_versions("sentiment")) == 1


def test_cli_builds_registers_and_answers_samples(
    starter_models, zoo_settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("TUNESERVE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUNESERVE_ZOO__CACHE_DIR", str(zoo_settings.zoo.cache_dir))
    monkeypatch.setenv("TUNESERVE_LIMITS__MAX_SEQUENCE_LENGTH", "128")
    monkeypatch.setenv("COLUMNS", "200")  # room for the whole table
    runner = CliRunner()
    built = runner.invoke(app, ["models", "build", "--profile", "tiny"])
    assert built.exit_code == 0, built.output
    for name in RECIPES:
        assert name in built.output
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "production→1" in listed.output
    ran = runner.invoke(app, ["samples", "--profile", "tiny"])
    assert ran.exit_code == 0, ran.output
    assert "sentiment@1" in ran.output and "label='positive'" in ran.output
    assert "chat@1" in ran.output
