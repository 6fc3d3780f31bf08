"""The training loop every Ray Train worker runs, in named phases, nanoGPT-style.

It reuses the task handler's features and collate, so one loop trains all five tasks;
``prepare_model`` / ``prepare_data_loader`` make the same code run as DDP on N workers.
Rank 0 writes step events and epoch checkpoints; every rank checks the cancel flag at the
same steps and agrees on it, so no rank waits forever on a peer that stopped.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from tuneserve.logs import configure_logging
from tuneserve.registry import connect
from tuneserve.registry.jobs import JobStore
from tuneserve.settings import Settings
from tuneserve.tasks import handler_for
from tuneserve.training.data import read_jsonl
from tuneserve.training.fit import TrainConfig, make_optimizer

logger = logging.getLogger("tuneserve.training")


def _all_agree(flag: bool) -> bool:
    """True on every rank if it is true on any (one collective per check)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _total(value: float) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item())


def _validation_loss(model, handler, features: list[dict], batch_size: int) -> float | None:
    if not features:
        return None
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            losses.append(
                float(model(**handler.collate(features[start : start + batch_size])).loss)
            )
    model.train()
    return sum(losses) / len(losses)


def _save_checkpoint(handler, metrics: dict[str, Any]) -> None:
    """Rank 0 hands a full model directory to Ray Train, which persists it to storage."""
    with tempfile.TemporaryDirectory() as folder:
        if ray.train.get_context().get_world_rank() == 0:
            handler.save(Path(folder))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)


def _report(jobs: JobStore, job_id: str, message: str, data: dict | None = None) -> None:
    """A job event (the API's events, the metrics' progress) and the same as a log line."""
    jobs.add_event(job_id, message, data=data)
    logger.info(message, extra={"job_id": job_id})


def train_loop_per_worker(config: dict[str, Any]) -> None:
    # --- set-up: settings, job store, model and data --------------------------------------
    configure_logging()
    torch.set_num_threads(config["torch_threads"])
    torch.manual_seed(config["seed"])
    settings = Settings.model_validate(config["settings"])
    registry, store = connect(settings)
    jobs, job_id = JobStore(registry.engine), config["job_id"]
    rank = ray.train.get_context().get_world_rank()
    handler_class = handler_for(config["task"])
    handler = handler_class.load(
        store.local_path(config["base_uri"]), max_length=config["max_length"]
    )
    rows = [handler_class.Row(**r) for r in read_jsonl(store.read_bytes(config["train_uri"]))]
    validation = [
        handler_class.Row(**r) for r in read_jsonl(store.read_bytes(config["validation_uri"]))
    ]
    if config["allow_new_labels"]:
        known = set(handler.model.config.label2id)
        seen = {label for row in rows + validation for label in handler.row_labels(row)}
        new = sorted(seen - known)
        if new:
            handler.add_labels(new)  # same on every rank: the rows decide, in sorted order
    features = handler.training_features(rows)
    validation_features = handler.training_features(validation)
    loader = ray.train.torch.prepare_data_loader(
        DataLoader(
            features,
            batch_size=config["batch_size"],
            shuffle=True,
            collate_fn=handler.collate,
            generator=torch.Generator().manual_seed(config["seed"]),
        )
    )
    model = ray.train.torch.prepare_model(handler.model)

    # --- optimizer and schedule ---------------------------------------------------------
    train = TrainConfig(
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        warmup_ratio=config["warmup_ratio"],
        weight_decay=config["weight_decay"],
        seed=config["seed"],
    )
    optimizer = make_optimizer(model, train)
    total_steps = max(1, len(loader) * train.epochs)
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(total_steps * train.warmup_ratio), total_steps
    )

    # --- the loop -----------------------------------------------------------------------
    if rank == 0:
        _report(jobs, job_id, f"workers ready: {len(features)} training examples loaded")
    step, tokens, best, stale, cancelled = 0, 0.0, math.inf, 0, False
    model.train()
    for epoch in range(1, train.epochs + 1):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        epoch_loss = 0.0
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_loss += loss.item()
            tokens += float(batch["attention_mask"].sum())
            if step == 1 and rank == 0:
                _report(jobs, job_id, f"first step done: loss {loss.item():.4f}")
            if step % config["check_every_steps"] == 0:
                if rank == 0:
                    _report(
                        jobs,
                        job_id,
                        f"step {step}/{total_steps}: loss {loss.item():.4f}",
                        {
                            "step": step,
                            "epoch": epoch,
                            "total_steps": total_steps,
                            "train_loss": loss.item(),
                            "learning_rate": schedule.get_last_lr()[0],
                        },
                    )
                cancelled = _all_agree(jobs.get_job(job_id).cancel_requested)
                if cancelled:
                    break

        # --- end of epoch: validation, checkpoint, early stopping ------------------------
        validation_loss = _validation_loss(
            model, handler, validation_features, config["batch_size"]
        )
        metrics = {
            "epoch": epoch,
            "step": step,
            "train_loss": epoch_loss / max(1, len(loader)),
            "validation_loss": validation_loss,
            "cancelled": cancelled,
            "trained_tokens": int(_total(tokens)),
            "trained_examples": len(features) * epoch,
        }
        if rank == 0:
            _report(
                jobs,
                job_id,
                f"epoch {epoch} done: validation loss {validation_loss}",
                # the epoch's mean loss, named apart from the steps' latest train_loss
                {
                    **{key: value for key, value in metrics.items() if key != "train_loss"},
                    "epoch_train_loss": metrics["train_loss"],
                },
            )
        _save_checkpoint(handler, metrics)
        patience = config["early_stopping_patience"]
        if validation_loss is not None and validation_loss < best:
            best, stale = validation_loss, 0
        else:
            stale += 1
        if cancelled or (patience and stale >= patience):
            break
