"""Named-entity recognition: entities of a text with character offsets, trained on IOB2 tags."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.spec import Limits, ServedBy, TaskRequest, TaskSpec, as_list

IOB2_TAG = re.compile(r"O|[BI]-\S+")


class NerItem(BaseModel):
    text: str


class NerRow(BaseModel):
    tokens: list[str] = Field(min_length=1)
    tags: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> NerRow:
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")
        return self


class Entity(BaseModel):
    text: str
    label: str
    start: int = Field(description="Character offset of the first character.")
    end: int = Field(description="Character offset one past the last character.")
    score: float


class NerOutput(BaseModel):
    entities: list[Entity]
    truncated: bool = Field(description="True when text past the model's length was not read.")


class NerRequest(TaskRequest):
    inputs: str | list[str] = Field(examples=["Anna Schmidt flew to Paris."])


class NerResponse(ServedBy):
    results: list[NerOutput]


def iob2_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in an IOB2 sequence; a stray I- opens one."""
    spans: list[tuple[str, int, int]] = []
    for index, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and spans and spans[-1][0] == kind and spans[-1][2] == index - 1:
            spans[-1] = (kind, spans[-1][1], index)
        elif prefix in ("B", "I"):
            spans.append((kind, index, index))
    return spans


class NerTask(TaskSpec):
    name = "ner"
    Item = NerItem
    Row = NerRow
    Output = NerOutput
    route = "/ner"
    Request = NerRequest
    Response = NerResponse
    summary = "Entities of each input text, with character offsets."
    handler = "tuneserve.tasks.handlers.ner:NerHandler"
    default_model = "entities"
    architectures = ("ForTokenClassification",)
    encoder_head = True
    primary_metric = "f1"
    example: ClassVar[dict[str, Any]] = {"text": "Anna flew to Paris."}
    label_kind = "tags"

    def items(self, request: NerRequest, limits: Limits) -> list[NerItem]:
        return [NerItem(text=t) for t in as_list(request.inputs)]

    def row_labels(self, row: dict[str, Any]) -> list[str]:
        return row["tags"]

    def head_labels(self, labels: set[str]) -> list[str]:
        """For every entity type both B- and I-: a head that knows one needs the other."""
        kinds = {tag.partition("-")[2] for tag in labels if tag != "O"}
        return sorted(labels | {f"{p}-{k}" for k in kinds for p in ("B", "I")})

    def new_head(self, labels: list[str]) -> list[str]:
        """Entity types (``PER``) or IOB2 tags (``B-PER``): ``O``, then B- and I- of each."""
        kinds = {
            label.partition("-")[2] if label[:2] in ("B-", "I-") else label for label in labels
        }
        kinds.discard("O")
        bad = sorted(kind for kind in kinds if not IOB2_TAG.fullmatch(f"B-{kind}"))
        if not kinds or bad:
            raise InvalidRequest(
                f"give entity types such as PER, LOC (or IOB2 tags); not usable: {bad or labels}",
                param="labels",
            )
        return ["O"] + [f"{p}-{kind}" for kind in sorted(kinds) for p in ("B", "I")]

    def row_errors(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            (f"tags.{i}", f"{tag!r} is not an IOB2 tag (O, B-TYPE or I-TYPE)")
            for i, tag in enumerate(row["tags"])
            if not IOB2_TAG.fullmatch(tag)
        ]


SPEC = NerTask()
