"""Helpers shared by the data generators."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, TypeVar

Split = Literal["train", "heldout"]
T = TypeVar("T")


def split_list(values: Sequence[T], split: Split, heldout_every: int = 4) -> list[T]:
    """Deterministically put every ``heldout_every``-th value in the held-out split."""
    keep_heldout = split == "heldout"
    return [
        v for i, v in enumerate(values) if (i % heldout_every == heldout_every - 1) == keep_heldout
    ]


def rng_for(seed: int, split: Split, name: str) -> random.Random:
    """A generator seeded per (seed, split, data set), so splits never share a stream."""
    return random.Random(f"{seed}:{split}:{name}")
