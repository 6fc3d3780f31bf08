"""The model a training run starts from: base, new head, grown head, adapters, checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneserve.registry import ArtifactStore
from tuneserve.tasks.handlers import lora
from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.tasks.spec import TaskSpec
from tuneserve.training.config import TrainingConfig


def initial_model(
    spec: TaskSpec,
    config: TrainingConfig,
    context: dict[str, Any],
    store: ArtifactStore,
    resumed: Path | None,
) -> TaskHandler:
    """The handler whose model this run trains, from the last checkpoint when restarted.

    A LoRA run trains adapters on full weights: its base's, or, when the base is a LoRA
    version itself, its base's base, under the base's adapter trained further. A full run
    on a LoRA version trains the adapter merged into its weights.
    """
    cls, options = spec.handler_class(), {"max_length": config.max_sequence_length}
    base = store.verified_path(context["base_uri"], context["base_sha256"])
    under = store.verified_path(*context["adapter_base"]) if context["adapter_base"] else None
    if config.lora:
        if resumed or under:
            return lora.load(cls, under or base, resumed or base, trainable=True, **options)
        handler = cls.load(base, **options)
        lora.attach(handler, config.lora)
        return handler
    if resumed:  # a checkpoint has the new or grown head already
        return cls.load(resumed, **options)
    if config.head_labels:  # a new model: the base's encoder, a new head
        return cls.with_new_head(base, config.head_labels, **options)
    if under:
        handler = lora.load(cls, under, base, merge=True, **options)
    else:
        handler = cls.load(base, **options)
    if context["new_labels"]:
        handler.add_labels(context["new_labels"])
    return handler
