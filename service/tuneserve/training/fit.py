"""A plain single-process training loop over a task handler's features.

It builds the starter models and is the baseline the Ray Train path is measured against:
the same features, collate, optimizer and schedule, nothing distributed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel
from transformers import get_linear_schedule_with_warmup

from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.tasks.handlers.cpu import cpu_multiplies_bfloat16
from tuneserve.training.config import TrainingConfig


@dataclass
class FitReport:
    steps: int
    examples: int
    seconds: float
    first_loss: float
    last_loss: float

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0


def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW with no weight decay on biases and norms, as BERT-style fine-tuning expects."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int):
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to zero."""
    warmup = int(total_steps * config.warmup_ratio)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def uses_bfloat16(config: TrainingConfig, device: torch.device) -> bool:
    """Mixed precision: always on a GPU; on a CPU as configured, by default where it is native.

    Measured on a CPU with AMX (translation, Marian 256×3): 1.3× the samples/s of float32,
    to the same loss step for step.
    """
    if device.type == "cuda":
        return True
    return cpu_multiplies_bfloat16() if config.cpu_bfloat16 is None else config.cpu_bfloat16


def train_step(
    model, batch: dict, optimizer, schedule, max_grad_norm: float, bfloat16: bool
) -> torch.Tensor:
    """One optimisation step on one batch; the loss (detached). Shared by every loop.

    With ``bfloat16`` the forward pass runs under bfloat16 autocast (mixed precision:
    weights and optimizer state stay float32, and bfloat16 needs no loss scaling).
    """
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def batches(features: Sequence[dict[str, Any]], batch_size: int, generator: torch.Generator):
    """Features in a fresh random order, ``batch_size`` at a time."""
    order = torch.randperm(len(features), generator=generator).tolist()
    for start in range(0, len(order), batch_size):
        yield [features[i] for i in order[start : start + batch_size]]


def fit(
    handler: TaskHandler,
    rows: Sequence[BaseModel],
    config: TrainingConfig,
    on_step: Callable[[int, int, float], None] | None = None,
) -> FitReport:
    """Train ``handler.model`` in place on ``rows``; ``on_step(step, total, loss)`` reports."""
    torch.manual_seed(config.seed)
    features = handler.training_features(rows)
    steps_per_epoch = -(-len(features) // config.batch_size)
    total = steps_per_epoch * config.n_epochs
    model = handler.model
    bfloat16 = uses_bfloat16(config, next(model.parameters()).device)
    optimizer = make_optimizer(model, config)
    schedule = make_schedule(optimizer, config, total)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    for _ in range(config.n_epochs):
        for chunk in batches(features, config.batch_size, generator):
            loss = train_step(
                model, handler.collate(chunk), optimizer, schedule, config.max_grad_norm, bfloat16
            )
            losses.append(loss.item())
            if on_step:
                on_step(len(losses), total, losses[-1])
    model.eval()
    return FitReport(
        steps=len(losses),
        examples=len(features) * config.n_epochs,
        seconds=time.perf_counter() - started,
        first_loss=losses[0],
        last_loss=losses[-1],
    )
