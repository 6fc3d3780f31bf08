"""Starter models: generated data, cached builds, registration, and the CLI around them."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from tuneserve.cli import app
from tuneserve.registry import connect
from tuneserve.settings import Settings
from tuneserve.tasks.ner import iob2_spans
from tuneserve.zoo import corpora
from tuneserve.zoo.build import build_all, build_one, corpus_file, fingerprint, pretrained_file
from tuneserve.zoo.corpora import VADER_SENTIMENT
from tuneserve.zoo.data import dialogues, entities, qa, sentiment, translation
from tuneserve.zoo.data.common import split_list
from tuneserve.zoo.pretrained import PretrainedSource
from tuneserve.zoo.recipes import RECIPES
from tuneserve.zoo.register import register_starter_model
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


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
    listed = runner.invoke(app, ["models", "list", "--local"])
    assert listed.exit_code == 0 and "production→1" in listed.output
    ran = runner.invoke(app, ["samples", "--profile", "tiny"])
    assert ran.exit_code == 0, ran.output
    assert "sentiment@1" in ran.output and "label='positive'" in ran.output
    assert "chat@1" in ran.output


def test_the_full_chat_starter_is_smollm2_converted_not_trained(tmp_path):
    """`make run`'s chat model is SmolLM2-135M-Instruct from its GGUF file (installed by
    `make install`), evaluated on the held-out dialogues like a trained starter."""
    recipe = RECIPES["chat"]
    few = dataclasses.replace(recipe.budgets["full"], train_rows=8, eval_rows=8)
    recipe = dataclasses.replace(recipe, budgets={**recipe.budgets, "full": few})
    settings = Settings(data_dir=tmp_path, zoo={"profile": "full"})
    report = build_one(recipe, settings)
    assert "SmolLM2-135M-Instruct" in report.description and report.parameters > 130_000_000
    assert report.train_examples_per_s == 0 and 0 < report.metrics["loss"] < 5
    folder = settings.zoo.dir / "chat"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    tiny = Settings(data_dir=tmp_path, zoo={"profile": "tiny"})
    assert pretrained_file(recipe, tiny) is None  # the tests' profile trains its own


def test_a_missing_pretrained_package_falls_back_to_training_with_a_warning(caplog):
    absent = PretrainedSource("no-such-distribution", "model.gguf", "a model")
    recipe = dataclasses.replace(RECIPES["chat"], pretrained={"full": absent})
    settings = Settings(zoo={"profile": "full"})
    assert pretrained_file(recipe, settings) is None
    assert "no-such-distribution is not installed" in caplog.text
    installed = dataclasses.replace(recipe, pretrained=RECIPES["chat"].pretrained)
    assert fingerprint(recipe, settings) != fingerprint(installed, settings)


VADER = ROOT / ".tuneserve" / "corpora" / VADER_SENTIMENT.file


@pytest.mark.skipif(not VADER.is_file(), reason="`make install` downloads the corpus")
def test_the_sentiment_corpus_is_scored_human_text_without_movie_reviews():
    rows = VADER_SENTIMENT.read(VADER)
    labels = Counter(row["label"] for row in rows)
    assert 9000 < len(rows) < 10000 and min(labels.values()) > 4000
    with tarfile.open(VADER) as outer:  # the movie snippets overlap SST-2: none are used
        inner = io.BytesIO(outer.extractfile(corpora._VADER_DATA).read())
    with tarfile.open(fileobj=inner) as data:
        movies = data.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        movie_texts = {line.split("\t")[2].strip() for line in movies.read().decode().splitlines()}
    assert not movie_texts & {row["text"] for row in rows}
    train, heldout = VADER_SENTIMENT.split(VADER, 8000, 1000, seed=13)
    assert len(train) == 8000 and len(heldout) == 1000
    assert len({row["text"] for row in rows}) == len(rows)  # repeated texts kept once
    assert not {r["text"] for r in train} & {r["text"] for r in heldout}


@pytest.mark.parametrize("name", ["sentiment", "translate-en-de"])
def test_a_missing_corpus_falls_back_to_generated_rows(name, tmp_path, caplog):
    settings = Settings(data_dir=tmp_path, zoo={"profile": "full"})
    assert corpus_file(RECIPES[name], settings) is None
    assert "using generated rows" in caplog.text
