"""Uploaded fine-tuning files: formats, normalization, and an exact error for every bad row."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest
from tuneserve.errors import InvalidRequest, PayloadTooLarge
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.training import data as data_module
from tuneserve.training.data import RowError, parse_training_file
from tuneserve.training.dataset import ArrowRowWriter, held_out_rows, rows_of, split

ROWS = {
    "classification": [
        {"text": "great film", "label": "positive"},
        {"text": "dull", "label": "negative"},
    ],
    "ner": [
        {
            "tokens": ["Anna", "flew", "to", "New", "York"],
            "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC"],
        },
        {"tokens": ["Hi"], "tags": ["O"]},
    ],
    "qa": [
        {
            "question": "Who flew?",
            "context": "Anna flew to Paris.",
            "answers": {"text": ["Anna"], "answer_start": [0]},
        },
    ],
    "translation": [{"source": "Hello", "target": "Hallo"}],
    "chat": [
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
            ]
        },
    ],
}
LABELS = {
    "classification": ["negative", "positive"],
    "ner": ["B-LOC", "B-PER", "I-LOC", "O"],
    "qa": [],
    "translation": [],
    "chat": [],
}


def jsonl(*rows: object) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@dataclass
class Parsed:
    task: str
    rows: list[dict]  # what the sink received
    labels: list[str]
    sha256: str


def parse(data: bytes, filename: str = "train.jsonl", **kwargs) -> Parsed:
    limits = {"max_bytes": 1_000_000, "max_rows": 1000} | kwargs
    rows: list[dict] = []
    parsed = parse_training_file(data, filename, builtin_catalog(), rows.extend, **limits)
    assert parsed.rows == len(rows)
    return Parsed(parsed.task, rows, parsed.labels, parsed.sha256)


def invalid(data: bytes, filename: str = "train.jsonl", **kwargs) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(data, filename, **kwargs)
    assert caught.value.param == "file"
    return caught.value


def row_errors(error: InvalidRequest) -> list[RowError]:
    return [RowError(**detail) for detail in error.details]


@pytest.mark.parametrize("task", sorted(ROWS))
def test_jsonl_of_each_task_is_inferred_normalized_and_labelled(task):
    # an extra key is dropped by normalization, not an error
    data = jsonl(*({**row, "id": i} for i, row in enumerate(ROWS[task])))
    parsed = parse(data)
    assert parsed.task == task
    assert parsed.rows == ROWS[task]
    assert parsed.labels == LABELS[task]
    assert len(parsed.sha256) == 64


def test_given_task_is_checked_instead_of_inferred():
    error = invalid(jsonl(*ROWS["classification"]), task="translation")
    assert row_errors(error)[:2] == [
        RowError(1, "source", "Field required"),
        RowError(1, "target", "Field required"),
    ]
    with pytest.raises(InvalidRequest) as caught:
        parse(jsonl(*ROWS["classification"]), task="poetry")
    assert caught.value.param == "task"


def test_csv_classification():
    data = b'text,label\r\ngreat film,positive\r\n"dull, long",negative\r\n'
    parsed = parse(data, "train.CSV")
    assert parsed.task == "classification"
    assert parsed.rows == [
        {"text": "great film", "label": "positive"},
        {"text": "dull, long", "label": "negative"},
    ]


def test_csv_ner_holds_json_in_cells():
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["tokens", "tags"])
    for row in ROWS["ner"]:
        writer.writerow([json.dumps(row["tokens"]), json.dumps(row["tags"])])
    parsed = parse(out.getvalue().encode(), "entities.csv")
    assert (parsed.task, parsed.rows, parsed.labels) == ("ner", ROWS["ner"], LABELS["ner"])


def test_csv_lines_count_the_header_and_multiline_cells():
    data = b'text,label\n"two\nlines",positive\n\nbad,\nonly one cell\n'
    errors = row_errors(invalid(data, "train.csv"))
    assert errors == [
        RowError(5, "label", "String should have at least 1 character"),
        RowError(6, None, "expected 2 cells (text, label), got 1"),
    ]


def test_csv_cell_that_is_not_json_names_its_field():
    data = b'tokens,tags\n"[""Hi""]",O\n'
    errors = row_errors(invalid(data, "train.csv"))
    assert [(e.line, e.field) for e in errors] == [(2, "tags")]
    assert errors[0].message.startswith("the cell is not valid JSON")


def test_blank_lines_are_skipped_but_counted_and_a_bom_is_stripped():
    good, bad = ROWS["classification"][0], {"text": "x"}
    data = b"\xef\xbb\xbf" + jsonl(good) + b"\n  \r\n" + jsonl(bad)
    error = invalid(data)
    assert row_errors(error) == [RowError(4, "label", "Field required")]
    assert parse(b"\xef\xbb\xbf" + jsonl(good) + b"\n\n").rows == [good]


def test_wrong_extension_names_the_accepted_ones():
    message = invalid(jsonl(*ROWS["classification"]), "train.txt").message
    assert "'train.txt'" in message
    assert all(ext in message for ext in (".jsonl", ".json", ".csv"))


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"text,label\n"])
def test_a_file_without_rows_is_refused(data):
    filename = "train.csv" if data.startswith(b"text") else "train.jsonl"
    assert invalid(data, filename).message == "the file has no rows"


def test_oversized_file_names_both_sizes():
    data = jsonl(*ROWS["classification"])
    with pytest.raises(PayloadTooLarge) as caught:
        parse(data, max_bytes=len(data) - 1)
    assert caught.value.param == "file"
    assert str(len(data)) in caught.value.message
    assert str(len(data) - 1) in caught.value.message
    assert parse(data, max_bytes=len(data)).rows == ROWS["classification"]


def test_too_many_rows_counts_unreadable_ones_too():
    data = jsonl(*ROWS["classification"]) + b"{broken\n"
    with pytest.raises(PayloadTooLarge) as caught:
        parse(data, max_rows=2)
    assert caught.value.param == "file"
    assert "3 rows" in caught.value.message
    assert "at most 2" in caught.value.message


def test_non_utf8_names_offset_and_line():
    data = b"\xef\xbb\xbf" + jsonl(ROWS["classification"][0]) + b'{"text": "caf\xe9"}\n'
    offset = data.index(b"\xe9")
    message = invalid(data).message
    assert f"byte 0xe9 at byte offset {offset} (line 2)" in message


def test_bad_json_and_non_objects_are_whole_line_errors():
    good = ROWS["classification"][0]
    data = jsonl(good) + b"\n" + b'{"text": "x", "label": \n' + jsonl([good], "text", None)
    error = invalid(data)
    assert error.message.startswith("4 rows are invalid; first errors: line 3: not valid JSON")
    errors = row_errors(error)
    assert [(e.line, e.field) for e in errors] == [(3, None), (4, None), (5, None), (6, None)]
    assert [e.message for e in errors[1:]] == [
        "expected a JSON object, got an array",
        "expected a JSON object, got a string",
        "expected a JSON object, got null",
    ]


def test_no_valid_object_at_all_reports_the_lines():
    error = invalid(b"[1]\nnot json\n")
    assert [e.line for e in row_errors(error)] == [1, 2]


def test_missing_field_and_wrong_type_are_named():
    rows = [ROWS["classification"][0], {"text": "x"}, {"text": "y", "label": 1}]
    error = invalid(jsonl(*rows))
    assert row_errors(error) == [
        RowError(2, "label", "Field required"),
        RowError(3, "label", "Input should be a valid string"),
    ]
    assert error.message == (
        "2 rows are invalid; first errors: line 2, field 'label': Field required; "
        "line 3, field 'label': Input should be a valid string"
    )
    assert error.to_dict()["details"] == [
        {"line": 2, "field": "label", "message": "Field required"},
        {"line": 3, "field": "label", "message": "Input should be a valid string"},
    ]


def test_nested_fields_are_dotted():
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]}]
    errors = row_errors(invalid(jsonl(*rows)))
    assert [(e.line, e.field) for e in errors] == [(1, "messages.1.role")]


def test_ner_length_mismatch_and_non_iob2_tags():
    rows = [
        {"tokens": ["Anna", "flew"], "tags": ["B-PER"]},
        {"tokens": ["Anna", "flew", "home"], "tags": ["PER", "O", "B-"]},
    ]
    assert row_errors(invalid(jsonl(*rows))) == [
        RowError(1, None, "2 tokens but 1 tags"),
        RowError(2, "tags.0", "'PER' is not an IOB2 tag (O, B-TYPE or I-TYPE)"),
        RowError(2, "tags.2", "'B-' is not an IOB2 tag (O, B-TYPE or I-TYPE)"),
    ]


def test_qa_answer_not_in_context():
    row = {**ROWS["qa"][0], "answers": {"text": ["Paris"], "answer_start": [0]}}
    assert row_errors(invalid(jsonl(row))) == [
        RowError(1, None, "answer 'Paris' is not at character 0 of the context")
    ]


def test_unknown_row_shape_lists_the_accepted_ones():
    message = invalid(jsonl({"prompt": "a", "completion": "b"})).message
    assert "['completion', 'prompt']" in message
    for shape in ("{label, text}", "{tags, tokens}", "{messages}", "{source, target}"):
        assert shape in message


def test_max_errors_caps_the_list_but_not_the_count():
    rows = [{"text": "x"}] * 30 + [ROWS["classification"][0]] + [{"label": 3}] * 5
    error = invalid(jsonl(*rows), max_errors=4)
    assert error.message.startswith("35 rows are invalid; first errors: line 1,")
    assert [e.line for e in row_errors(error)] == [1, 2, 3, 4]
    assert "line 5" not in error.message


CLASSIFICATION, NER = builtin_catalog().get("classification"), builtin_catalog().get("ner")


def test_unknown_labels_are_refused_unless_declared():
    known = ["negative", "positive"]
    assert CLASSIFICATION.unknown_labels(["negative"], known, allow_new=False) == []
    new = CLASSIFICATION.unknown_labels(["meh", "negative", "ugh"], known, allow_new=True)
    assert new == ["meh", "ugh"]
    with pytest.raises(InvalidRequest) as caught:
        NER.unknown_labels(["B-ORG", "O"], ["O", "B-PER"], allow_new=False)
    assert caught.value.param == "labels"
    assert "B-ORG" in caught.value.message
    assert "tags" in caught.value.message


@pytest.mark.parametrize(("n", "fraction", "held_out"), [(2, 0.1, 1), (10, 0.2, 2), (10, 1.0, 9)])
def test_held_out_rows_are_seeded_and_sized(n, fraction, held_out):
    held = held_out_rows(n, fraction, seed=7).tolist()
    assert len(held) == held_out and held == sorted(set(held))
    assert all(0 <= i < n for i in held)
    assert held == held_out_rows(n, fraction, seed=7).tolist()


def test_held_out_rows_depend_on_the_seed_and_need_two_rows():
    assert held_out_rows(50, 0.2, seed=1).tolist() != held_out_rows(50, 0.2, seed=2).tolist()
    with pytest.raises(InvalidRequest):
        held_out_rows(1, 0.2, seed=1)


def test_rows_stream_into_arrow_and_split_in_file_order(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "BATCH_ROWS", 3)  # several batches into one file
    rows = [*ROWS["chat"], *({"messages": m["messages"]} for m in ROWS["chat"] * 9)]
    rows[3] = {
        "messages": [{"role": "user", "content": "naïve\u2028line"}, *rows[3]["messages"][1:]]
    }
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    with ArrowRowWriter(tmp_path / "rows.arrow") as sink:
        parsed = parse_training_file(
            data, "chat.jsonl", builtin_catalog(), sink, max_bytes=10**6, max_rows=100
        )
    assert parsed.rows == len(rows) and rows_of(tmp_path / "rows.arrow") == rows
    split(tmp_path / "rows.arrow", 0.3, 4, tmp_path / "train.arrow", tmp_path / "val.arrow")
    train, validation = rows_of(tmp_path / "train.arrow"), rows_of(tmp_path / "val.arrow")
    held = held_out_rows(len(rows), 0.3, 4).tolist()
    assert validation == [rows[i] for i in held]
    assert train == [row for i, row in enumerate(rows) if i not in held]
