"""Build the starter models (``tuneserve models build``): generate, train, evaluate, save.

A starter whose profile names a pretrained file (the full profile's chat model) is not
trained: the file is converted and evaluated on the same held-out rows instead.

Builds are cached: a model is rebuilt only when its recipe, profile or generator code
changed (a fingerprint in ``build.json``) or when forced. Each build is written to a temp
folder and renamed into place, so an interrupted build never looks finished.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import transformers

from tuneserve.settings import Settings
from tuneserve.tasks.handlers import variants
from tuneserve.tasks.handlers.gguf import dequantise
from tuneserve.training.fit import fit
from tuneserve.zoo import recipes
from tuneserve.zoo.corpora import Corpus
from tuneserve.zoo.pretrained import PretrainedSource
from tuneserve.zoo.recipes import RECIPES, Recipe

BUILD_FILE = "build.json"
StepCallback = Callable[[str, int, int, float], None]  # (model, step, total, loss)


@dataclass(frozen=True)
class BuildReport:
    name: str
    task: str
    profile: str
    fingerprint: str
    metrics: dict[str, Any]
    build_seconds: float
    train_examples_per_s: float
    parameters: int
    size_bytes: int
    description: str = ""  # of the model this build made (pretrained or trained here)
    variants: dict[str, dict] | None = None  # verdict per optimised variant; None: not tried
    variants_fingerprint: str | None = None  # of the settings and code the verdicts came from
    cached: bool = False


def pretrained_file(recipe: Recipe, settings: Settings) -> tuple[PretrainedSource, Path] | None:
    """The installed file this profile's starter is made from, if it is a published model."""
    source = recipe.pretrained.get(settings.zoo.profile)
    path = source.locate() if source else None
    return (source, path) if source and path else None


def corpus_file(recipe: Recipe, settings: Settings) -> tuple[Corpus, Path] | None:
    """The downloaded corpus this profile's starter trains on, if it has one and it is there."""
    corpus = recipe.corpus.get(settings.zoo.profile)
    path = corpus.locate(settings.zoo.corpora_dir) if corpus else None
    return (corpus, path) if corpus and path else None


def _rows(recipe: Recipe, settings: Settings) -> tuple[list, list, str]:
    """(training rows, held-out rows, where they come from): the real corpus, or generated."""
    budget, seed = recipe.budgets[settings.zoo.profile], settings.zoo.seed
    found = corpus_file(recipe, settings)
    if found:
        corpus, path = found
        train, heldout = corpus.split(path, budget.train_rows, budget.eval_rows, seed)
        origin = f"Trained on {len(train)} {corpus.description}"
    else:
        train = recipe.data.generate("train", budget.train_rows, seed)
        heldout = recipe.data.generate("heldout", budget.eval_rows, seed)
        origin = "Trained on generated text"
    row = recipe.spec.Row
    return [row(**r) for r in train], [row(**r) for r in heldout], origin


def fingerprint(recipe: Recipe, settings: Settings) -> str:
    """Changes whenever the recipe, the profile's budget, the generator code or the
    pretrained file it starts from changes."""
    budget = recipe.budgets[settings.zoo.profile]
    pretrained = pretrained_file(recipe, settings)
    corpus = corpus_file(recipe, settings)
    parts = [
        recipe.name,
        settings.zoo.profile,
        str(settings.zoo.seed),
        repr(budget),
        str(settings.limits.max_sequence_length),
        settings.zoo.resolved_encoder_base().split("/")[-1],
        inspect.getsource(recipe.data),
        inspect.getsource(recipes),
        pretrained[0].identity(pretrained[1]) if pretrained else "trained here",
        corpus[0].identity(corpus[1]) if corpus else "generated",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cached_report(model_dir: Path, expected: str) -> BuildReport | None:
    """The report of a finished build with the expected fingerprint, if there is one."""
    try:
        report = json.loads((model_dir / BUILD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if report.get("fingerprint") != expected:
        return None
    known = {field.name for field in fields(BuildReport)}  # an older report may have more
    return BuildReport(**{k: v for k, v in report.items() if k in known} | {"cached": True})


def build_one(
    recipe: Recipe, settings: Settings, on_step: StepCallback | None = None
) -> BuildReport:
    """Train one starter model into ``settings.zoo.dir / name`` and report its metrics."""
    budget = recipe.budgets[settings.zoo.profile]
    train, heldout, origin = _rows(recipe, settings)
    target = settings.zoo.dir / recipe.name
    staging = target.with_name(f".{recipe.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    pretrained = pretrained_file(recipe, settings)
    if pretrained:
        source, path = pretrained
        dequantise(path, staging)
        handler = recipe.handler_class().load(
            staging, max_length=settings.limits.max_sequence_length
        )
        description, examples_per_s = source.description, 0.0
    else:
        torch.manual_seed(settings.zoo.seed)
        handler = recipe.create(settings, budget, train)
        step = (lambda s, total, loss: on_step(recipe.name, s, total, loss)) if on_step else None
        trained = fit(handler, train, budget.train, on_step=step)
        handler.save(staging)
        description = f"{recipe.description} {origin}."
        examples_per_s = trained.examples_per_s
    metrics, verdicts = variants.verify(handler, heldout, settings.tasks.variants)
    if recipe.extra_metrics:
        metrics.update(recipe.extra_metrics(handler, train, heldout))
    metric = recipe.floor[0]
    description += f" Held-out {metric} {metrics[metric]:.3f} ({len(heldout)} rows)."
    report = BuildReport(
        name=recipe.name,
        task=recipe.task,
        profile=settings.zoo.profile,
        fingerprint=fingerprint(recipe, settings),
        metrics=metrics,
        build_seconds=round(time.perf_counter() - started, 1),
        train_examples_per_s=round(examples_per_s, 1),
        parameters=sum(p.numel() for p in handler.model.parameters()),
        size_bytes=sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()),
        description=description,
        variants=verdicts,
        variants_fingerprint=variants.fingerprint(settings.tasks.variants),
    )
    (staging / BUILD_FILE).write_text(json.dumps(asdict(report) | {"cached": False}, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return report


def build_all(
    settings: Settings,
    names: list[str] | None = None,
    force: bool = False,
    on_step: StepCallback | None = None,
) -> list[BuildReport]:
    """Build every starter model (or ``names``) that is missing or out of date."""
    torch.set_num_threads(max(torch.get_num_threads(), settings.serving.threads()))
    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected here
    settings.zoo.dir.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in names or list(RECIPES):
        recipe = RECIPES[name]
        cached = (
            None if force else cached_report(settings.zoo.dir / name, fingerprint(recipe, settings))
        )
        expected = variants.fingerprint(settings.tasks.variants)
        if cached is not None and cached.variants_fingerprint != expected:
            cached = with_variants(recipe, settings, cached)
        reports.append(cached or build_one(recipe, settings, on_step))
    return reports


def with_variants(recipe: Recipe, settings: Settings, report: BuildReport) -> BuildReport:
    """A cached build whose variants were verified under other settings (or before variants
    existed), verified again on its held-out rows (seconds, where a rebuild takes minutes)
    and written into its report."""
    model_dir = settings.zoo.dir / recipe.name
    verdicts: dict[str, dict] = {}
    if recipe.task in settings.tasks.variants.tasks:
        handler = recipe.handler_class().load(
            model_dir, max_length=settings.limits.max_sequence_length
        )
        _, heldout, _ = _rows(recipe, settings)
        _, verdicts = variants.verify(handler, heldout, settings.tasks.variants)
    checked_with = variants.fingerprint(settings.tasks.variants)
    report = replace(report, variants=verdicts, variants_fingerprint=checked_with)
    saved = asdict(report) | {"cached": False}
    (model_dir / BUILD_FILE).write_text(json.dumps(saved, indent=2))
    return report
