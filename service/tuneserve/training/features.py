"""Model features of Arrow rows, per Ray Train worker: memory-mapped, sharded, cached.

Each worker opens its share of a rows file (``dataset.py``) with Hugging Face ``datasets``,
and ``datasets.map`` turns rows into model features in batches, writing them to a cache
file named by a fingerprint of everything they depend on: a restarted worker reads the
features back instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets

datasets.disable_progress_bars()  # worker logs are JSON lines, not progress bars


def open_rows(path: Path) -> datasets.Dataset:
    return datasets.Dataset.from_file(str(path))


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def shard(rows: datasets.Dataset, rank: int, world: int) -> datasets.Dataset:
    """This rank's contiguous share; every rank gets as many rows (DDP steps in lockstep)."""
    per_rank = len(rows) // world
    return rows.select(range(rank * per_rank, (rank + 1) * per_rank))


def tokenized(
    rows: datasets.Dataset,
    featurize: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    cache_dir: Path,
    key: str,
) -> datasets.Dataset:
    """``featurize`` over the rows in batches, cached in ``cache_dir`` under ``key``.

    A row may give several features (QA windows) or none; the cache file is reused when
    the same rows, model and settings come again.
    """

    def batched(columns: dict[str, list]) -> dict[str, list]:
        names = list(columns)
        rows = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        features = featurize(rows)
        return {k: [f[k] for f in features] for k in (features[0] if features else {})}

    cache_dir.mkdir(parents=True, exist_ok=True)
    return rows.map(
        batched,
        batched=True,
        batch_size=1000,
        remove_columns=rows.column_names,
        cache_file_name=str(cache_dir / f"{key}.arrow"),
        new_fingerprint=key,
        load_from_cache_file=True,
    )
