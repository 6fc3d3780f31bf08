"""The settings of a LoRA version (method ``lora`` of a fine-tuning job): schema only.

Kept with the task specs, torch-free, so that the public API, the training config and the
handlers' PEFT code (``tasks/handlers/lora.py``) share one definition.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class LoraParameters(BaseModel):
    """A LoRA version: low-rank adapters on the base's layers (PEFT), the head trained whole.

    The version stores only the adapter; it is served on its base's weights, which stay
    resident once per replica for every adapter version of that base.
    """

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=8, ge=1, le=256, description="Rank of each adapter's matrices.")
    alpha: float = Field(default=16.0, gt=0, description="Scale: updates are alpha / r.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: (
        list[Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.]+$")]]
        | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Names of the layers to adapt (e.g. query, value). Default: PEFT's "
        "choice for the architecture, else every linear layer but the output one.",
    )
