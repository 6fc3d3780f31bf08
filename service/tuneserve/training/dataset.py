"""Training rows as Arrow files: written once at upload, split without Python rows.

An upload becomes one Arrow IPC stream file (``ArrowRowWriter``), the format Hugging Face
``datasets`` maps without reading it into memory (``features.py``). A job without a
validation file splits that table by a seeded choice of rows. Only pyarrow here: the
gateway writes uploads and must not load ``datasets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tuneserve.errors import InvalidRequest


class ArrowRowWriter:
    """A parse sink: batches of row dicts appended to one Arrow stream file."""

    def __init__(self, path: Path):
        self.path = path
        self._writer: pa.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None  # the first batch's: every later one follows it

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=self._schema)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pa.ipc.new_stream(str(self.path), table.schema)
        self._writer.write_table(table)

    def __enter__(self) -> ArrowRowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()


def _table(path: Path) -> pa.Table:
    """The file's rows, memory-mapped: reading them copies nothing into Python."""
    return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()


def _write(table: pa.Table, path: Path) -> None:
    with pa.ipc.new_stream(str(path), table.schema) as writer:
        writer.write_table(table)


def held_out_rows(count: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the validation rows, sorted; the same seed always picks the same rows.

    Validation gets ``round(fraction * count)`` rows, at least one and never all.
    """
    if count < 2:
        raise InvalidRequest(
            f"holding out a validation set needs at least 2 training rows; the file has "
            f"{count}: add rows or upload a validation file",
            param="training_file",
        )
    size = min(count - 1, max(1, round(fraction * count)))
    return np.sort(np.random.default_rng(seed).choice(count, size=size, replace=False))


def split(source: Path, fraction: float, seed: int, train: Path, validation: Path) -> None:
    """Write the seeded (train, validation) split of ``source``, each in file order."""
    table = _table(source)
    held = held_out_rows(len(table), fraction, seed)
    keep = np.ones(len(table), dtype=bool)
    keep[held] = False
    _write(table.filter(pa.array(keep)), train)
    _write(table.take(pa.array(held)), validation)


def rows_of(path: Path) -> list[dict[str, Any]]:
    """Every row of a file as a dict (for evaluation sets, small by design)."""
    return _table(path).to_pylist()
