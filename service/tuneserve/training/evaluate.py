"""Evaluate a candidate against production on the same rows, and decide the gate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneserve.errors import InvalidRequest
from tuneserve.tasks import handler_for

LOWER_IS_BETTER = {"loss", "perplexity", "validation_loss"}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    metric: str
    candidate: float
    production: float
    min_delta: float
    reason: str


def evaluate_model(task: str, path: Path, rows: list[dict], max_length: int) -> dict[str, Any]:
    """The task's metrics of the model in ``path`` on ``rows``."""
    handler_class = handler_for(task)
    handler = handler_class.load(path, max_length=max_length)
    return handler.evaluate([handler_class.Row(**row) for row in rows])


def check_metric(task: str, metric: str | None) -> str:
    """The gate's metric: the task's primary one unless the job names another it reports."""
    handler_class = handler_for(task)
    return metric or handler_class.primary_metric


def decide(metric: str, candidate: dict, production: dict, min_delta: float) -> GateDecision:
    """Does the candidate beat production by at least ``min_delta`` on ``metric``?"""
    if metric not in candidate or not isinstance(candidate[metric], int | float):
        known = ", ".join(k for k, v in candidate.items() if isinstance(v, int | float))
        raise InvalidRequest(
            f"metric {metric!r} is not reported; choose one of: {known}", param="promotion.metric"
        )
    new, old = float(candidate[metric]), float(production[metric])
    gain = old - new if metric in LOWER_IS_BETTER else new - old
    passed = gain >= min_delta
    verdict = "beats" if passed else "does not beat"
    reason = (
        f"candidate {metric} {new:.4f} {verdict} production {old:.4f} by the required "
        f"{min_delta} (difference {gain:+.4f})"
    )
    return GateDecision(passed, metric, new, old, min_delta, reason)
