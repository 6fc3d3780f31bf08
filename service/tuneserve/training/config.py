"""TrainingConfig: every knob of one training run, resolved once.

A job's config is resolved when the job is created (``auto`` values, the task's default
learning rate, the deployment's limits), stored on the job, handed unchanged to every Ray
Train worker, saved inside each checkpoint and copied into the new version's lineage. The
starter-model builds use the same object with their own budgets.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.api.fine_tuning import Hyperparameters
from tuneserve.settings import Settings
from tuneserve.tasks.lora import LoraParameters
from tuneserve.tasks.spec import TaskSpec

# LoRA's usual learning rates are about ten times full fine-tuning's (the LoRA paper, PEFT's
# examples): the adapters are small and start from zero. Capped: tasks whose full default is
# already high (small models trained from scratch) keep a stable step.
LORA_LEARNING_RATE_FACTOR = 10.0
LORA_MAX_LEARNING_RATE = 1e-3


def lora_learning_rate(spec: TaskSpec) -> float:
    return min(spec.learning_rate * LORA_LEARNING_RATE_FACTOR, LORA_MAX_LEARNING_RATE)


class TrainingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    n_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    learning_rate_multiplier: float = Field(default=1.0, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    seed: int = 13
    max_sequence_length: int = Field(default=256, gt=8)
    num_workers: int = Field(default=1, ge=1)
    use_gpu: bool = False
    cpu_bfloat16: bool | None = None  # None: where the CPU multiplies bfloat16 natively
    cpus_per_worker: float = Field(default=1.0, gt=0)
    torch_threads: int = Field(default=1, ge=1)
    allow_new_labels: bool = False
    head_labels: list[str] | None = None  # a fresh head for these (a new model's); None: base's
    lora: LoraParameters | None = None  # a LoRA version: train and store only adapters
    early_stopping_patience: int | None = Field(default=None, ge=1)
    check_every_steps: int = Field(default=5, ge=1)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)

    @classmethod
    def resolve(
        cls,
        hyper: Hyperparameters,
        spec: TaskSpec,
        settings: Settings,
        lora: LoraParameters | None = None,
    ) -> TrainingConfig:
        """The request's hyperparameters with every ``auto`` and default made concrete."""
        multiplier = (
            1.0 if hyper.learning_rate_multiplier == "auto" else hyper.learning_rate_multiplier
        )
        return cls(
            n_epochs=settings.training.default_epochs
            if hyper.n_epochs == "auto"
            else hyper.n_epochs,
            batch_size=(
                settings.training.default_batch_size
                if hyper.batch_size == "auto"
                else hyper.batch_size
            ),
            learning_rate=hyper.learning_rate
            or multiplier * (lora_learning_rate(spec) if lora else spec.learning_rate),
            learning_rate_multiplier=multiplier,
            warmup_ratio=hyper.warmup_ratio,
            weight_decay=hyper.weight_decay,
            seed=hyper.seed if hyper.seed is not None else 0,
            max_sequence_length=hyper.max_sequence_length or settings.limits.max_sequence_length,
            num_workers=hyper.num_workers,
            use_gpu=settings.training.use_gpu if hyper.use_gpu is None else hyper.use_gpu,
            cpus_per_worker=settings.training.cpus_per_worker,
            cpu_bfloat16=settings.training.cpu_bfloat16,
            torch_threads=settings.training.torch_threads,
            allow_new_labels=hyper.allow_new_labels,
            early_stopping_patience=hyper.early_stopping_patience,
            check_every_steps=settings.training.check_every_steps,
            validation_fraction=settings.training.validation_fraction,
            lora=lora,
        )
