"""Read an uploaded fine-tuning file, row by row, into a task's normalized training rows.

Formats, by extension: ``.jsonl``/``.json`` are JSON Lines, one object per line in the
task's row schema (blank lines skipped but counted, so line numbers match the client's
editor). ``.csv`` has a header row (line 1) naming the fields; text fields are plain cells
(classification ``text,label``, translation ``source,target``), while list and object fields
(NER ``tokens``/``tags``, QA ``answers``, chat ``messages``) hold JSON inside the cell, e.g.
``"[""Anna"",""flew""]"``. Every bad row is reported by line and field, so a client can fix
a file in one round.

Rows stream: each valid one goes to a sink (``arrow.ArrowRowWriter`` for an upload) in
batches, so a large file is never held as Python rows; only the first errors are kept.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from tuneserve.errors import InvalidRequest, PayloadTooLarge
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import TaskSpec
from tuneserve.training.untrusted_json import loads, outside_int64

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
BATCH_ROWS = 10_000  # rows handed to the sink at once
INFER_FROM = 1_000  # records read to infer the task before giving up
INT64_ERROR = "the number is out of range (a 64-bit integer)"


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based line in the uploaded file (CSV: the header is line 1)
    field: str | None  # dotted path such as "messages.1.role"; None for a whole-line problem
    message: str


@dataclass(frozen=True)
class ParsedFile:
    task: str  # a task name of the catalog
    rows: int  # valid rows handed to the sink, in file order
    labels: list[str]  # sorted: the labels (NER: tags) the rows use, else []
    sha256: str  # of the raw uploaded bytes


@dataclass
class _Errors:
    """Every problem counted, the first ``keep`` of them listed."""

    keep: int
    listed: list[RowError] = field(default_factory=list)
    lines: set[int] = field(default_factory=set)

    def add(self, error: RowError) -> None:
        self.lines.add(error.line)
        if len(self.listed) < self.keep:
            self.listed.append(error)


Record = tuple[int, dict[str, Any] | RowError]  # a line's object, or why it has none
Sink = Callable[[list[dict]], None]


def parse_training_file(
    data: bytes,
    filename: str,
    catalog: TaskCatalog,
    sink: Sink,
    *,
    task: str | None = None,
    max_bytes: int,
    max_rows: int,
    max_errors: int = 20,
) -> ParsedFile:
    """Validate every row, handing valid ones to ``sink`` in batches; the task is inferred
    from the first rows' keys if not given.

    Raises ``PayloadTooLarge`` past ``max_bytes`` or ``max_rows``, and ``InvalidRequest`` for
    an unknown format, bad encoding, no rows, or bad rows (the first ``max_errors`` errors in
    the message and in ``details``); rows already handed to the sink are then to be dropped.
    """
    fmt = _format_of(filename)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the file is {len(data)} bytes; at most {max_bytes} are accepted", param="file"
        )
    records = _counted(_csv_records(data) if fmt == "csv" else _jsonl_records(data), max_rows)
    spec, records = _task_of(catalog, task, records)
    json_fields = _json_fields(spec) if fmt == "csv" else set()
    errors, labels, batch, count = _Errors(max_errors), set(), [], 0
    for line, value in records:
        row = _row(line, value, spec, json_fields, errors)
        if row is None or errors.lines:  # a file with a bad row is refused: errors only
            continue
        labels.update(spec.row_labels(row))
        batch.append(row)
        count += 1
        if len(batch) == BATCH_ROWS:
            sink(batch)
            batch = []
    if errors.lines:
        raise _invalid_rows(errors)
    if count == 0:
        raise InvalidRequest("the file has no rows", param="file")
    if batch:
        sink(batch)
    return ParsedFile(spec.name, count, sorted(labels), hashlib.sha256(data).hexdigest())


def _format_of(filename: str) -> str:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidRequest(
            f"{filename!r} is not an accepted training file: use .jsonl or .json (one JSON "
            "object per line) or .csv (with a header row)",
            param="file",
        )
    return FORMATS[suffix]


def _lines(data: bytes) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, decoded as UTF-8 without a BOM, one at a time.

    Split on b"\\n" only: str.splitlines would also split on U+2028, legal inside JSON.
    """
    offset = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    stream = io.BytesIO(data)
    stream.seek(offset)
    for number, raw in enumerate(stream, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            at = offset + error.start
            raise InvalidRequest(
                f"the file is not UTF-8: byte 0x{data[at]:02x} at byte offset {at} "
                f"(line {number}) cannot be decoded; save the file as UTF-8",
                param="file",
            ) from None
        offset += len(raw)


def _jsonl_records(data: bytes) -> Iterator[Record]:
    for line, raw in _lines(data):
        if not raw.strip():
            continue
        value, problem = loads(raw)
        if problem:
            yield line, RowError(line, None, problem)
        elif isinstance(value, dict):
            yield line, value
        else:
            kind = JSON_KINDS.get(type(value)) or json.dumps(value)  # true, false, null
            yield line, RowError(line, None, f"expected a JSON object, got {kind}")


def _csv_records(data: bytes) -> Iterator[Record]:
    """Rows of cells keyed by the header; a row spanning lines is numbered by its first."""
    reader = csv.reader(text for _, text in _lines(data))
    header: list[str] | None = None
    line = 1  # where the next row starts
    try:
        for cells in reader:
            if cells and header is None:
                header = cells
            elif cells and len(cells) != len(header):
                message = f"expected {len(header)} cells ({', '.join(header)}), got {len(cells)}"
                yield line, RowError(line, None, message)
            elif cells:
                yield line, dict(zip(header, cells, strict=True))
            line = reader.line_num + 1
    except csv.Error as error:
        raise InvalidRequest(f"line {line}: malformed CSV: {error}", param="file") from None


def _counted(records: Iterator[Record], max_rows: int) -> Iterator[Record]:
    """The records, refusing the file once it has more than ``max_rows`` (readable or not)."""
    for count, record in enumerate(records, start=1):
        if count > max_rows:
            rest = sum(1 for _ in records)
            raise PayloadTooLarge(
                f"the file has {count + rest} rows; at most {max_rows} are accepted", param="file"
            )
        yield record


def _task_of(
    catalog: TaskCatalog, task: str | None, records: Iterator[Record]
) -> tuple[TaskSpec, Iterator[Record]]:
    """The given task, or the one whose required fields the first fitting object has (extra
    keys ignored; not just the first row, so one with a missing field is reported as such)."""
    if task:
        return catalog.get(task), records
    seen: list[Record] = []
    for record in records:
        seen.append(record)
        value = record[1]
        spec = isinstance(value, dict) and _fitting(catalog, value)
        if spec:
            return spec, _chain(seen, records)
        if len(seen) >= INFER_FROM:
            break
    objects = [value for _, value in seen if isinstance(value, dict)]
    if not seen:
        raise InvalidRequest("the file has no rows", param="file")
    if not objects:  # no line could be read as a row
        errors = _Errors(20)
        for _, error in seen:
            errors.add(error)
        raise _invalid_rows(errors)
    shapes = "; ".join(
        f"{spec.name}: {{{', '.join(sorted(spec.required_fields()))}}}" for spec in catalog
    )
    raise InvalidRequest(
        f"the first row has keys {sorted(objects[0])}, which match no task; accepted rows: "
        f"{shapes}",
        param="file",
    )


def _fitting(catalog: TaskCatalog, value: dict[str, Any]) -> TaskSpec | None:
    return next((spec for spec in catalog if spec.required_fields() <= value.keys()), None)


def _chain(seen: list[Record], rest: Iterator[Record]) -> Iterator[Record]:
    yield from seen
    yield from rest


def _json_fields(spec: TaskSpec) -> set[str]:
    """CSV: every non-text field is JSON inside its cell."""
    return {name for name, f in spec.Row.model_fields.items() if f.annotation is not str}


def _row(
    line: int,
    value: dict[str, Any] | RowError,
    spec: TaskSpec,
    json_fields: set[str],
    errors: _Errors,
) -> dict | None:
    """The normalized row, or None after recording every error in it."""
    if isinstance(value, RowError):
        errors.add(value)
        return None
    found = []
    for name in json_fields & value.keys():
        cell, problem = loads(value[name])
        if problem:
            found.append(RowError(line, name, f"the cell is {problem}"))
        else:
            value = value | {name: cell}
    row = None
    if not found:
        try:
            row = spec.Row.model_validate(value).model_dump(mode="json")
        except ValidationError as error:
            found = [
                RowError(line, ".".join(map(str, e["loc"])) or None, _message(e["msg"]))
                for e in error.errors()
            ]
        else:
            found = [RowError(line, name, message) for name, message in spec.row_errors(row)]
            found += [RowError(line, name, INT64_ERROR) for name in outside_int64(row)]
    for error in found:
        errors.add(error)
    return None if found else row


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")


def _invalid_rows(errors: _Errors) -> InvalidRequest:
    """One error naming how many rows are bad and the first few problems, line order."""
    first = errors.listed
    listed = "; ".join(
        f"line {e.line}{f', field {e.field!r}' if e.field else ''}: {e.message}" for e in first
    )
    invalid = len(errors.lines)
    noun = "row is" if invalid == 1 else "rows are"
    return InvalidRequest(
        f"{invalid} {noun} invalid; first errors: {listed}",
        param="file",
        details=[asdict(error) for error in first],
    )
