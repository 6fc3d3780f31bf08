"""LoRA versions: adapters (PEFT) on a base model's layers, for every task.

A LoRA version's artifact holds only its adapter (``adapter_config.json`` and
``adapter_model.safetensors``, with the head trained whole when the task has one) and the
tokenizer; the weights it runs on are its base's, named in the version's lineage. Three
ways to use one: train it (``attach`` / ``load(trainable=True)``), run it alone (``load``),
or serve many on one resident base (``AdapterHost``). ``load(merge=True)`` folds it into
plain weights, for a full fine-tune on top of it or a merged version.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.tasks.lora import LoraParameters

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ALL_LINEAR = "all-linear"  # PEFT: every linear layer but the output one


def adapter_bytes(path: str | Path) -> int:
    """What a LoRA version stores beyond its tokenizer: the adapter's weights."""
    return (Path(path) / ADAPTER_WEIGHTS).stat().st_size


def attach(handler: TaskHandler, params: LoraParameters) -> None:
    """Put fresh adapters on the handler's model for training; only they (and the task's
    head, trained whole) will learn, the base's weights are frozen."""
    model = handler.model
    targets = params.target_modules or (
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model.config.model_type)
        or ALL_LINEAR
    )
    heads = [name for name in handler.head_modules if hasattr(model, name)]
    config = LoraConfig(
        r=params.r,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=targets,
        modules_to_save=heads or None,
    )
    try:
        handler.model = get_peft_model(model, config)
    except ValueError as error:  # PEFT names the modules it could not find
        raise InvalidRequest(
            f"LoRA cannot adapt this model: {error}", param="method.lora.target_modules"
        ) from error


def load(
    handler_class: type[TaskHandler],
    base: str | Path,
    adapter: str | Path,
    *,
    trainable: bool = False,
    merge: bool = False,
    adapter_name: str = "default",
    **options: Any,
) -> TaskHandler:
    """The adapter in ``adapter`` on the base weights in ``base``: to run, to train on
    (``trainable``), or folded into plain weights (``merge``)."""
    handler = handler_class.load(base, **options)
    model = PeftModel.from_pretrained(
        handler.model, str(adapter), adapter_name=adapter_name, is_trainable=trainable
    )
    handler.model = model.merge_and_unload() if merge else model
    if not trainable:
        handler.model.eval()
    return handler


class ActiveAdapter:
    """One adapter version's view of a base shared by several: each call makes its adapter
    the active one first. The replica runs every model call on one thread, so two views
    never run at once; a view whose adapter was released (its version evicted while a
    request was still queued) loads it back."""

    def __init__(self, model: PeftModel, name: str, path: Path):
        self._model, self._name, self._path = model, name, path

    def _activate(self) -> PeftModel:
        if self._name not in self._model.peft_config:
            self._model.load_adapter(str(self._path), adapter_name=self._name)
        if self._model.active_adapter != self._name:
            self._model.set_adapter(self._name)
        return self._model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._activate()(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self._activate().generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # config, device, …: the shared model's
        return getattr(self._model, name)


class AdapterHost:
    """The resident bases of one replica, each carrying the adapters of its LoRA versions.

    A base is loaded once, whatever number of its LoRA versions are resident, and is
    dropped with its last adapter. Not thread-safe: the replica calls it on its model
    thread only.
    """

    def __init__(self, handler_class: type[TaskHandler], **options: Any):
        self._handler_class = handler_class
        self._options = options
        self._bases: dict[str, TaskHandler] = {}  # base path → handler over a PeftModel
        self._adapters: dict[str, str] = {}  # adapter name → its base's path

    @staticmethod
    def adapter_name(key: str) -> str:
        """``name@version`` as a PEFT adapter name (no dots: they are module paths)."""
        return re.sub(r"\W", "_", key)

    def add(self, key: str, base: Path, adapter: Path) -> TaskHandler:
        """A handler of the version ``key`` whose model is the shared base under its adapter."""
        name = self.adapter_name(key)
        shared = self._bases.get(str(base))
        if shared is None:
            shared = load(self._handler_class, base, adapter, adapter_name=name, **self._options)
            self._bases[str(base)] = shared
        elif name not in shared.model.peft_config:
            shared.model.load_adapter(str(adapter), adapter_name=name)
        self._adapters[name] = str(base)
        view = copy.copy(shared)
        view.model = ActiveAdapter(shared.model, name, adapter)
        return view

    def release(self, key: str) -> None:
        """Drop the version's adapter, and its base with the last one."""
        name = self.adapter_name(key)
        base = self._adapters.pop(name, None)
        if base is None:
            return
        if base not in self._adapters.values():  # its last adapter: the base goes with it
            del self._bases[base]
        elif name in self._bases[base].model.peft_config:
            self._bases[base].model.delete_adapter(name)

    def bases(self) -> int:
        return len(self._bases)


def open_version(
    handler_class: type[TaskHandler], path: str | Path, base: str | Path | None, **options: Any
) -> TaskHandler:
    """A version for inference: its own weights, or (``base`` given) its adapter on them."""
    if base is None:
        return handler_class.load(path, **options)
    return load(handler_class, base, path, **options)
