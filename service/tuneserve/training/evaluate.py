"""Evaluate a candidate against production on the same rows, and decide the gate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from tuneserve.api.fine_tuning import Promotion
from tuneserve.errors import InvalidRequest
from tuneserve.settings import RegistrySettings, TaskSettings
from tuneserve.settings.sections import VariantSettings
from tuneserve.tasks.spec import TaskSpec


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    metric: str
    candidate: float
    production: float | None  # None: a new model, which has no production yet
    min_delta: float
    reason: str


# A model to score: its artifact's URI and, for a LoRA version, the URI of its base's weights
Weights = tuple[str, str | None]


def evaluate_model(
    spec: TaskSpec,
    path: Path,
    rows: list[dict],
    max_length: int,
    options: Any = None,
    base: Path | None = None,
    variants: VariantSettings | None = None,
) -> tuple[dict[str, Any], dict[str, dict]]:
    """The task's metrics of the model in ``path`` (an adapter on ``base``) on ``rows``, and
    (``variants`` given) the verdict on each optimised variant of it, on the same rows.

    LoRA versions get no variants: they serve on a base shared with other versions.
    """
    from tuneserve.tasks.handlers.lora import open_version  # torch and PEFT: workers only
    from tuneserve.tasks.handlers.variants import verify

    handler = open_version(spec.handler_class(), path, base, max_length=max_length, options=options)
    typed = [spec.Row(**row) for row in rows]
    if variants is None or base is not None:
        return handler.evaluate(typed), {}
    return verify(handler, typed, variants)


@ray.remote(num_cpus=1)
def evaluate_both(
    task: str,
    sections: tuple[RegistrySettings, TaskSettings, int],
    models: dict[str, Weights],
    validation_uri: str,
    max_length: int,
) -> dict[str, dict]:
    """Each labelled model on the same rows, in a task that reserves the CPU it uses; the
    candidate's optimised variants too, under ``"variants"`` (a verdict each).

    ``sections``: the registry and task settings and the torch threads, all it reads.
    """
    import torch

    from tuneserve.registry import connect
    from tuneserve.tasks.catalog import TaskCatalog
    from tuneserve.training.dataset import rows_of

    registry_settings, tasks, threads = sections
    torch.set_num_threads(threads)
    spec = TaskCatalog.load(tasks.modules).get(task)
    options = spec.options(tasks.options.get(task))
    _, store = connect(registry_settings)
    rows = rows_of(store.local_file(validation_uri))
    scores: dict[str, dict] = {}
    for label, (uri, base) in models.items():
        scores[label], variants = evaluate_model(
            spec,
            store.local_path(uri),
            rows,
            max_length,
            options,
            store.local_path(base) if base else None,
            tasks.variants if label == "candidate" else None,
        )
        if label == "candidate":
            scores["variants"] = variants
    return scores


def decide(
    spec: TaskSpec, promotion: Promotion, candidate: dict, production: dict | None
) -> GateDecision:
    """Does the candidate beat production by at least ``min_delta`` on the gate's metric?

    The metric is the task's primary one unless the job names another the task reports.
    A new model (a suffix job's first version) has no production: its candidate passes.
    """
    metric = promotion.metric or spec.primary_metric
    if metric not in candidate or not isinstance(candidate[metric], int | float):
        known = ", ".join(k for k, v in candidate.items() if isinstance(v, int | float))
        raise InvalidRequest(
            f"metric {metric!r} is not reported; choose one of: {known}", param="promotion.metric"
        )
    new = float(candidate[metric])
    if production is None:
        reason = f"candidate {metric} {new:.4f}; the model has no production version to beat"
        return GateDecision(True, metric, new, None, promotion.min_delta, reason)
    old = float(production[metric])
    gain = spec.gain(metric, new, old)
    passed = gain >= promotion.min_delta
    verdict = "beats" if passed else "does not beat"
    reason = (
        f"candidate {metric} {new:.4f} {verdict} production {old:.4f} by the required "
        f"{promotion.min_delta} (difference {gain:+.4f})"
    )
    return GateDecision(passed, metric, new, old, promotion.min_delta, reason)


def variants_summary(variants: dict[str, dict]) -> str:
    """One line per verdict: ``int8 serves (1.7x, agreement 99.6%)`` or why it does not."""
    return "; ".join(
        f"{kind} serves ({v['speedup']}x, agreement {v['agreement']:.1%})"
        if v["serve"]
        else f"{kind} does not serve: {v['reason']}"
        for kind, v in variants.items()
    )
