"""What a LoRA version's lineage records: the full weights its adapter runs on.

Serving, evaluation, retention and merging read ``lineage["adapter"]`` (through
``VersionInfo.weights_base``) to find those weights without walking the version chain: a
LoRA job on a LoRA version trains that adapter further, on the same full weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneserve.registry import VersionInfo
from tuneserve.tasks.handlers.lora import adapter_bytes
from tuneserve.tasks.lora import LoraParameters
from tuneserve.training.trainer import Plan


def adapter_lineage(base: VersionInfo, lora: LoraParameters, adapter: Path) -> dict[str, Any]:
    """The full version under the adapter (the job's base, or its base's), and the adapter."""
    under = base.lineage.get("adapter")
    weights = (
        {key: under[key] for key in ("model", "version", "artifact_uri", "sha256")}
        if under
        else {
            "model": base.model,
            "version": base.version,
            "artifact_uri": base.artifact_uri,
            "sha256": base.sha256,
        }
    )
    return weights | {"bytes": adapter_bytes(adapter), "lora": lora.model_dump()}


def runs_on(model: Plan | VersionInfo) -> str | None:
    """The URI of the full weights a LoRA candidate (a plan's) or version runs on; None for
    a model with weights of its own."""
    if isinstance(model, VersionInfo):
        return model.weights_base[0] if model.weights_base else None
    if not model.config.lora:
        return None
    return model.adapter_base[0] if model.adapter_base else model.base_uri
