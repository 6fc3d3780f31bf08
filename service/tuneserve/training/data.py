"""Parse and validate uploaded fine-tuning files into a task's normalized training rows.

Formats, by extension: ``.jsonl``/``.json`` are JSON Lines, one object per line in the
task's row schema (blank lines skipped but counted, so line numbers match the client's
editor). ``.csv`` has a header row (line 1) naming the fields; text fields are plain cells
(classification ``text,label``, translation ``source,target``), while list and object fields
(NER ``tokens``/``tags``, QA ``answers``, chat ``messages``) hold JSON inside the cell, e.g.
``"[""Anna"",""flew""]"``. Every bad row is reported by line and field, so a client can fix
a file in one round.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import random
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from tuneserve.errors import InvalidRequest, PayloadTooLarge
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import TaskSpec

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based line in the uploaded file (CSV: the header is line 1)
    field: str | None  # dotted path such as "messages.1.role"; None for a whole-line problem
    message: str


@dataclass(frozen=True)
class ParsedFile:
    task: str  # a task name of the catalog
    rows: list[dict]  # validated rows in file order, as the task's Row model dumps them
    labels: list[str]  # sorted: classification labels, NER tags (all IOB2 tags seen), else []
    sha256: str  # of the raw uploaded bytes


Record = tuple[int, dict[str, Any]]  # (line, the object or CSV cells on it)


def parse_training_file(
    data: bytes,
    filename: str,
    catalog: TaskCatalog,
    *,
    task: str | None = None,
    max_bytes: int,
    max_rows: int,
    max_errors: int = 20,
) -> ParsedFile:
    """Validated rows of an upload; the task is inferred from the first row's keys if not given.

    Raises ``PayloadTooLarge`` past ``max_bytes`` or ``max_rows``, and ``InvalidRequest`` for
    an unknown format, bad encoding, no rows, or bad rows (the first ``max_errors`` errors in
    the message and in ``details``).
    """
    fmt = _format_of(filename)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"the file is {len(data)} bytes; at most {max_bytes} are accepted", param="file"
        )
    text = _decode(data)
    records, errors = _csv_records(text) if fmt == "csv" else _jsonl_records(text)
    count = len(records) + len(errors)  # a reading error is one row that could not be read
    if count == 0:
        raise InvalidRequest("the file has no rows", param="file")
    if count > max_rows:
        raise PayloadTooLarge(
            f"the file has {count} rows; at most {max_rows} are accepted", param="file"
        )
    if not records:  # no line could be read as a row
        raise _invalid_rows(errors, max_errors)
    spec = catalog.get(task) if task else _infer_task(catalog, [value for _, value in records])
    rows, row_errors = _validate(records, spec, cells_are_text=fmt == "csv")
    if errors or row_errors:
        raise _invalid_rows(errors + row_errors, max_errors)
    labels = sorted({label for row in rows for label in spec.row_labels(row)})
    return ParsedFile(spec.name, rows, labels, hashlib.sha256(data).hexdigest())


def _format_of(filename: str) -> str:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidRequest(
            f"{filename!r} is not an accepted training file: use .jsonl or .json (one JSON "
            "object per line) or .csv (with a header row)",
            param="file",
        )
    return FORMATS[suffix]


def _decode(data: bytes) -> str:
    """UTF-8 text without a BOM; otherwise say where the first undecodable byte is."""
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = skip + error.start
        line = data.count(b"\n", 0, offset) + 1
        raise InvalidRequest(
            f"the file is not UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} "
            f"(line {line}) cannot be decoded; save the file as UTF-8",
            param="file",
        ) from None


def _jsonl_records(text: str) -> tuple[list[Record], list[RowError]]:
    # split on "\n" only: str.splitlines would also split on U+2028, legal inside JSON strings
    records, errors = [], []
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            errors.append(
                RowError(line, None, f"not valid JSON: {error.msg} at column {error.colno}")
            )
            continue
        if isinstance(value, dict):
            records.append((line, value))
        else:
            kind = JSON_KINDS.get(type(value), json.dumps(value))  # true, false, null
            errors.append(RowError(line, None, f"expected a JSON object, got {kind}"))
    return records, errors


def _csv_records(text: str) -> tuple[list[Record], list[RowError]]:
    """Rows of cells keyed by the header; a row spanning lines is numbered by its first."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[Record] = []
    errors: list[RowError] = []
    header: list[str] | None = None
    line = 1  # where the next row starts
    try:
        for cells in reader:
            if cells and header is None:
                header = cells
            elif cells and len(cells) != len(header):
                message = f"expected {len(header)} cells ({', '.join(header)}), got {len(cells)}"
                errors.append(RowError(line, None, message))
            elif cells:
                records.append((line, dict(zip(header, cells, strict=True))))
            line = reader.line_num + 1
    except csv.Error as error:
        raise InvalidRequest(f"line {line}: malformed CSV: {error}", param="file") from None
    return records, errors


def _infer_task(catalog: TaskCatalog, values: list[dict[str, Any]]) -> TaskSpec:
    """The task whose required fields the first fitting row has (extra keys are ignored).

    Not just the first row: one with a missing field is then reported as such.
    """
    for value in values:
        for spec in catalog:
            if spec.required_fields() <= value.keys():
                return spec
    shapes = "; ".join(
        f"{spec.name}: {{{', '.join(sorted(spec.required_fields()))}}}" for spec in catalog
    )
    raise InvalidRequest(
        f"the first row has keys {sorted(values[0])}, which match no task; accepted rows: {shapes}",
        param="file",
    )


def _validate(
    records: list[Record], spec: TaskSpec, *, cells_are_text: bool
) -> tuple[list[dict], list[RowError]]:
    """Normalized valid rows, and every error of the invalid ones, in file order."""
    row_model = spec.Row
    json_fields: set[str] = set()
    if cells_are_text:  # CSV: every non-text field is JSON inside its cell
        json_fields = {n for n, f in row_model.model_fields.items() if f.annotation is not str}
    rows, errors = [], []
    for line, value in records:
        value, row_errors = _decode_cells(line, value, json_fields)
        if not row_errors:
            row, row_errors = _check_row(line, value, spec)
        if row_errors:
            errors += row_errors
        else:
            rows.append(row)
    return rows, errors


def _check_row(line: int, value: dict[str, Any], spec: TaskSpec) -> tuple[dict, list[RowError]]:
    """The normalized row, or every error in it (one per pydantic error, then the task's)."""
    try:
        row = spec.Row.model_validate(value).model_dump(mode="json")
    except ValidationError as error:
        return {}, [
            RowError(
                line, ".".join(map(str, e["loc"])) or None, e["msg"].removeprefix("Value error, ")
            )
            for e in error.errors()
        ]
    return row, [RowError(line, field, message) for field, message in spec.row_errors(row)]


def _decode_cells(
    line: int, cells: dict[str, str], json_fields: set[str]
) -> tuple[dict[str, Any], list[RowError]]:
    decoded: dict[str, Any] = dict(cells)
    errors = []
    for name in json_fields & cells.keys():
        try:
            decoded[name] = json.loads(cells[name])
        except json.JSONDecodeError as error:
            errors.append(RowError(line, name, f"the cell is not valid JSON: {error.msg}"))
    return decoded, errors


def _invalid_rows(errors: list[RowError], max_errors: int) -> InvalidRequest:
    """One error naming how many rows are bad and the first few problems, line order."""
    first = sorted(errors, key=lambda e: e.line)[:max_errors]
    invalid = len({error.line for error in errors})
    listed = "; ".join(
        f"line {e.line}{f', field {e.field!r}' if e.field else ''}: {e.message}" for e in first
    )
    noun = "row is" if invalid == 1 else "rows are"
    return InvalidRequest(
        f"{invalid} {noun} invalid; first errors: {listed}",
        param="file",
        details=[asdict(error) for error in first],
    )


def check_labels(
    parsed_labels: list[str], known: list[str], *, allow_new: bool, spec: TaskSpec
) -> list[str]:
    """The file's labels the base model lacks; refused unless the client declared new labels."""
    known_set = set(known)
    new = [label for label in parsed_labels if label not in known_set]
    if new and not allow_new:
        kind = spec.label_kind or "labels"
        raise InvalidRequest(
            f"the training file has {kind} the base {spec.name} model does not know: "
            f"{', '.join(new)}; its {kind} are: {', '.join(known)}. Relabel those rows, "
            f"or declare the new {kind} to add them to the model",
            param="labels",
        )
    return new


def seeded_split(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation), both in file order; the same seed always picks the same rows.

    Validation gets ``round(fraction * len(rows))`` rows, at least one and never all.
    """
    if len(rows) < 2:
        raise InvalidRequest(
            f"holding out a validation set needs at least 2 training rows; the file has "
            f"{len(rows)}: add rows or upload a validation file",
            param="training_file",
        )
    size = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    held_out = set(random.Random(seed).sample(range(len(rows)), size))
    train = [row for i, row in enumerate(rows) if i not in held_out]
    return train, [row for i, row in enumerate(rows) if i in held_out]


def rows_to_jsonl(rows: list[dict]) -> bytes:
    """The stored form of validated rows: compact UTF-8 JSON Lines."""
    lines = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
    return "".join(lines).encode("utf-8")


def read_jsonl(data: bytes) -> list[dict]:
    """Rows stored by ``rows_to_jsonl``."""
    return [json.loads(line) for line in data.decode("utf-8").split("\n") if line]
