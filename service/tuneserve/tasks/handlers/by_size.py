"""The ``by-size`` variant: two verified variants of one version, each running the batches
it is fastest at.

Which variant is fastest depends on the batch's size as well as the hardware. On a Xeon with
AMX, bf16 ran batches of 32 at 2.7x fp32's speed but one sentence no faster than fp32, while
ONNX Runtime ran one sentence at 2.3x and batches of 32 at 0.9x: whichever of the two served
alone, one shape of traffic got the slower. A replica's batches are one item under light load
and full under heavy load, so when verification finds two passing variants that win at
different sizes it measures where they cross, and records a ``by-size`` verdict that serves
the small batches with one and the large with the other. Both models stay resident: twice
the memory of one variant, which for the encoders that get variants is tens of MB.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.tasks.spec import TaskSpec

BY_SIZE = "by-size"
SIZES = (2, 4, 8, 16, 32)  # batch sizes at which the crossover is looked for
TIMED = 32  # items timed at each size


@dataclass(frozen=True)
class Speed:
    """Seconds an item takes on average, served in batches of 32 and served alone."""

    batched: float
    alone: float

    @property
    def total(self) -> float:
        return self.batched + self.alone

    def speedups(self, fp32: Speed) -> dict[str, float]:
        """fp32's seconds over these: both shapes together (the rule's), and each shape's
        (a verdict's ``speedup``, ``speedup_batched``, ``speedup_alone``), unrounded."""
        shapes = {
            "speedup": (fp32.total, self.total),
            "speedup_batched": (fp32.batched, self.batched),
            "speedup_alone": (fp32.alone, self.alone),
        }
        return {name: ref / ours if ours > 0 else 0.0 for name, (ref, ours) in shapes.items()}


@dataclass(frozen=True)
class Candidate:
    """A variant that passed verification: its handler, speed and verdict."""

    handler: TaskHandler
    speed: Speed
    verdict: dict[str, Any]


class ByBatchSize(torch.nn.Module):
    """Runs a batch of fewer than ``from_rows`` rows on ``small``, others on ``large``;
    otherwise looks like the models it wraps (``config``, ``device``), as handlers expect."""

    def __init__(self, small: torch.nn.Module, large: torch.nn.Module, from_rows: int):
        super().__init__()
        self.small, self.large, self.from_rows = small, large, from_rows
        self.config = large.config

    @property
    def device(self) -> torch.device:
        return self.large.device

    def forward(self, **inputs: torch.Tensor) -> Any:
        rows = next(iter(inputs.values())).shape[0]
        return (self.large if rows >= self.from_rows else self.small)(**inputs)


def verdict(
    spec: TaskSpec, fp32: Speed, passed: dict[str, Candidate], items: Sequence
) -> dict | None:
    """The ``by-size`` verdict over ``passed``, or None where one variant is fastest both
    alone and in batches (or where the one fastest alone stays ahead at every size timed)."""
    if not passed:
        return None
    small = min(passed, key=lambda kind: passed[kind].speed.alone)
    large = min(passed, key=lambda kind: passed[kind].speed.batched)
    if small == large:
        return None
    per_item = {kind: _per_item(passed[kind].handler, items) for kind in (small, large)}
    from_rows = next((n for n in SIZES if per_item[large][n] <= per_item[small][n]), None)
    if from_rows is None:
        return None
    parts = (passed[small].verdict, passed[large].verdict)
    metric = parts[0]["metric"]
    worse = min(parts, key=lambda part: spec.gain(metric, part["value"], part["fp32"]))
    speed = Speed(batched=passed[large].speed.batched, alone=passed[small].speed.alone)
    return {
        "serve": True,
        "reason": f"{small} for batches under {from_rows} rows, {large} from {from_rows}: "
        "both verified above",
        "metric": metric,
        "fp32": worse["fp32"],
        "value": worse["value"],  # the worse of the two
        "agreement": min(part["agreement"] for part in parts),
        **{name: round(ratio, 2) for name, ratio in speed.speedups(fp32).items()},
        "items": parts[0]["items"],
        "small": small,
        "large": large,
        "from_rows": from_rows,
        "seconds_per_item": {
            kind: {str(n): round(s, 6) for n, s in times.items()}
            for kind, times in per_item.items()
        },
    }


def _per_item(handler: TaskHandler, items: Sequence) -> dict[int, float]:
    """Seconds per item of ``handler`` on the first ``TIMED`` items, at each of ``SIZES``."""
    timed = list(items[:TIMED])
    times = {}
    for size in SIZES:
        started = time.perf_counter()
        handler.predict_in_chunks(timed, size)
        times[size] = (time.perf_counter() - started) / max(len(timed), 1)
    return times
