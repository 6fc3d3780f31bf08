"""The task-handler contract: one small class per task, no Ray, no HTTP, no SQL.

Serving life cycle: ``load(path) → preprocess(items) → forward(batch) → postprocess(batch,
outputs)``, always over a batch; only ``forward`` touches the model. Fine-tuning life cycle:
``training_features(rows) → collate(features)`` feed the model's own loss, and
``evaluate(rows)`` scores a model on held-out rows with the task's metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import torch
from pydantic import BaseModel
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.spec import TaskSpec

IGNORED = -100  # label id the loss skips: special tokens, later word pieces, non-assistant turns
ItemT = TypeVar("ItemT", bound=BaseModel)
RowT = TypeVar("RowT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)


@dataclass
class Batch:
    """Model inputs of one batch plus what postprocess needs to map outputs back to items."""

    inputs: dict[str, torch.Tensor]
    items: Sequence[Any]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenCounts:
    input: int = 0
    output: int = 0


@dataclass
class Encoded:
    """A tokenized batch cut to the model's length, with what postprocessing maps back."""

    inputs: dict[str, torch.Tensor]
    truncated: list[bool]
    word_ids: list[list[int | None]]
    offsets: list[list[list[int]]] | None = None


class TaskHandler(ABC, Generic[ItemT, RowT, OutputT]):
    """Everything task-specific about serving and fine-tuning one kind of model."""

    spec: ClassVar[TaskSpec]  # the task's schemas, defaults and settings
    auto_model: ClassVar[Any]
    # modules a LoRA version trains whole and stores with its adapter: the task's output head
    head_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 256,
        options: BaseModel | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = min(max_length, self.model_max_length(model, tokenizer))
        self.options = options if options is not None else self.spec.Options()

    # --- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", **options: Any) -> Self:
        """Load a Hugging Face-format directory (or a hub id when online) for inference.

        ``options`` are the constructor's knobs: ``max_length`` and the task's ``options``.
        """
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = cls.auto_model.from_pretrained(str(path)).to(device)
        model.eval()
        return cls(model, tokenizer, **options)

    @classmethod
    def with_new_head(cls, path: str | Path, labels: list[str], *, max_length: int = 256) -> Self:
        """The encoder in ``path`` under a freshly initialised head for ``labels``.

        Whatever head the folder had (another task's, other labels, none for a plain
        encoder) is dropped: a new model learns its label set from its own rows.
        """
        import transformers

        names = {
            "id2label": dict(enumerate(labels)),
            "label2id": {n: i for i, n in enumerate(labels)},
        }
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # "newly initialised weights" is the point
        try:
            model = cls.auto_model.from_pretrained(
                str(path), num_labels=len(labels), ignore_mismatched_sizes=True, **names
            )
        finally:
            transformers.logging.set_verbosity(verbosity)
        head = getattr(model, "classifier", None)
        if isinstance(head, torch.nn.Linear):  # a same-sized old head loads: start afresh
            head.weight.data.normal_(0.0, model.config.initializer_range)
            head.bias.data.zero_()
        return cls(model, AutoTokenizer.from_pretrained(str(path)), max_length=max_length)

    def save(self, path: Path) -> None:
        """Write model weights (safetensors), config and tokenizer to ``path``."""
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)

    @staticmethod
    def model_max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
        """The longest input the model can take: the smaller of tokenizer and positions."""
        limits = [tokenizer.model_max_length]
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions:
            limits.append(positions)
        return int(min(limits))

    @property
    def device(self) -> torch.device:
        return self.model.device

    # --- serving -----------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, items: Sequence[ItemT]) -> Batch:
        """Tokenize a batch of request items, padded to its longest member."""

    @abstractmethod
    def forward(self, batch: Batch) -> Any:
        """Run the model on a preprocessed batch; the only place that calls the model."""

    @abstractmethod
    def postprocess(self, batch: Batch, outputs: Any) -> list[OutputT]:
        """Turn model outputs into one typed output per request item, in order."""

    def predict(self, items: Sequence[ItemT]) -> list[OutputT]:
        """The whole serving life cycle on one batch."""
        return self.predict_counted(items)[0]

    def predict_counted(self, items: Sequence[ItemT]) -> tuple[list[OutputT], TokenCounts]:
        """``predict`` plus the tokens it read and wrote (what a server replica calls)."""
        if not items:
            return [], TokenCounts()
        batch = self.preprocess(items)
        with torch.inference_mode():
            outputs = self.forward(batch)
        results = self.postprocess(batch, outputs)
        if len(results) != len(items):
            raise RuntimeError(f"{self.spec.name}: {len(results)} outputs for {len(items)} inputs")
        return results, self.count_tokens(batch, outputs)

    def predict_groups(
        self, items: Sequence[ItemT], groups: list[list[int]]
    ) -> tuple[list[OutputT], TokenCounts]:
        """``predict_counted`` over ``items`` one group of indices at a time (a batch cut by
        length), the outputs back in the items' order and the tokens summed."""
        outputs: list[Any] = [None] * len(items)
        read = written = 0
        for group in groups:
            results, tokens = self.predict_counted([items[i] for i in group])
            read, written = read + tokens.input, written + tokens.output
            for index, result in zip(group, results, strict=True):
                outputs[index] = result
        return outputs, TokenCounts(read, written)

    def count_tokens(self, batch: Batch, outputs: Any) -> TokenCounts:
        """Tokens the model read, padding excluded; generating tasks add what they wrote."""
        mask = batch.inputs.get("attention_mask")
        return TokenCounts(input=int(mask.sum()) if mask is not None else 0)

    def items_of(self, rows: Sequence[RowT]) -> list[ItemT]:
        """The request items that ask for what ``rows`` label (a variant's outputs are
        compared with fp32's on them): by default, the fields a row shares with the item."""
        fields = set(self.spec.Item.model_fields)
        return [self.spec.Item(**row.model_dump(include=fields)) for row in rows]

    def predict_in_chunks(self, items: Sequence[ItemT], batch_size: int) -> list[OutputT]:
        """``predict`` over a long list, ``batch_size`` items at a time (used by evaluate)."""
        results: list[OutputT] = []
        for start in range(0, len(items), batch_size):
            results.extend(self.predict(items[start : start + batch_size]))
        return results

    # --- fine-tuning -------------------------------------------------------------------
    @abstractmethod
    def training_features(self, rows: Sequence[RowT]) -> list[dict[str, Any]]:
        """Model inputs with labels, one dict per training example (a row may give several)."""

    @property
    @abstractmethod
    def collator(self) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
        """Pads a list of training features into one batch of tensors."""

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.collator(features)

    @abstractmethod
    def evaluate(self, rows: Sequence[RowT], *, batch_size: int = 32) -> dict[str, Any]:
        """The task's metrics of the current model on held-out rows."""

    # --- helpers for subclasses --------------------------------------------------------
    def _encode_truncated(self, texts: list[Any], **kwargs: Any) -> Encoded:
        """Tokenize, pad to the longest and cut at ``max_length``, reporting who was cut.

        One tokenizer pass: overflow windows tell which texts were longer than the model,
        and only each text's first window is kept.
        """
        encoded = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
            return_tensors="pt",
            **kwargs,
        )
        windows_of = encoded.pop("overflow_to_sample_mapping").tolist()
        first = [windows_of.index(i) for i in range(len(texts))]
        offsets = encoded.pop("offset_mapping", None)
        return Encoded(
            inputs={key: value[first].to(self.device) for key, value in encoded.items()},
            truncated=[windows_of.count(i) > 1 for i in range(len(texts))],
            word_ids=[encoded.word_ids(window) for window in first],
            offsets=offsets[first].tolist() if offsets is not None else None,
        )

    def add_labels(self, labels: list[str]) -> None:
        """Grow the model's output head by ``labels``, keeping what it learned for the old.

        The new rows of the head start near zero, so the model predicts as before until
        fine-tuning teaches it the new labels.
        """
        head = getattr(self.model, "classifier", None)
        if not isinstance(head, torch.nn.Linear) or not labels:
            raise InvalidRequest(f"{self.spec.name} models cannot take new labels", param="labels")
        grown = torch.nn.Linear(head.in_features, head.out_features + len(labels))
        with torch.no_grad():
            grown.weight.normal_(0.0, 0.02)
            grown.bias.zero_()
            grown.weight[: head.out_features] = head.weight
            grown.bias[: head.out_features] = head.bias
        self.model.classifier = grown.to(head.weight.device)
        names = self._labels() + list(labels)
        self.model.config.id2label = dict(enumerate(names))
        self.model.config.label2id = {name: i for i, name in enumerate(names)}
        self.model.config.num_labels = len(names)
        if hasattr(self.model, "num_labels"):
            self.model.num_labels = len(names)

    def _labels(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[i] for i in range(len(id2label))]

    def _label_id(self, label: str, param: str) -> int:
        label2id = self.model.config.label2id
        if label not in label2id:
            known = ", ".join(sorted(label2id))
            raise InvalidRequest(f"unknown label {label!r}; this model knows: {known}", param=param)
        return int(label2id[label])
