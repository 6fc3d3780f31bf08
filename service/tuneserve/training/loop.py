"""The training loop every Ray Train worker runs, in named phases, nanoGPT-style.

It reuses the task handler's features and collate and ``fit``'s step, so one loop trains
every task; ``prepare_model`` / ``prepare_data_loader`` make the same code run as DDP on N
workers. Rank 0 writes step events and one checkpoint per epoch: the model, the job's
``TrainingConfig`` and the optimizer and schedule state. A run Ray Train restarts after a
failure resumes from the latest checkpoint (``ray.train.get_checkpoint``) instead of step 0.
Every rank checks the cancel flag at the same steps and agrees on it.

Workers hold no database connection: events and the cancel flag go through the runner
actor (found by the name in ``reporter``), and only the artifact store's location reaches
them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from torch.utils.data import DataLoader

from tuneserve.logs import configure_logging
from tuneserve.registry import ArtifactStore
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.training.collective import all_agree, fewest, total_over_ranks
from tuneserve.training.config import TrainingConfig
from tuneserve.training.features import fingerprint, open_rows, shard, tokenized
from tuneserve.training.fit import make_optimizer, make_schedule, train_step, uses_bfloat16
from tuneserve.training.initial_model import initial_model

logger = logging.getLogger("tuneserve.training")
STATE_DIR = "training_state"  # inside a checkpoint: config, optimizer, schedule, progress


@dataclass
class Epoch:
    """What one epoch's training pass left for its end: validation, checkpoint, events."""

    number: int
    loss: float  # summed over its steps
    batches: int
    seconds: float  # its training steps only (no validation, no checkpoint)
    cancelled: bool


@dataclass
class Progress:
    """Where a run is: restored from a checkpoint when Ray Train restarts it."""

    epoch: int = 0  # epochs completed
    step: int = 0
    tokens: float = 0.0
    best_loss: float = math.inf
    stale: int = 0


def _validation_loss(model, handler, features, batch_size: int) -> float | None:
    if not len(features):
        return None
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            chunk = [features[i] for i in range(start, min(start + batch_size, len(features)))]
            losses.append(float(model(**handler.collate(chunk)).loss))
    model.train()
    return sum(losses) / len(losses)


def _report(reporter, job_id: str, message: str | None = None, data: dict | None = None) -> bool:
    """A job event (the API's events, the metrics' progress) through the runner, and the
    same as a log line; the answer: whether the job's cancel was asked for."""
    if message is not None:
        logger.info(message, extra={"job_id": job_id})
    return ray.get(reporter.progress.remote(job_id, message, data))


def _save_checkpoint(handler, config, optimizer, schedule, progress, metrics) -> None:
    """Rank 0 hands the model and the training state to Ray Train, which stores them."""
    with tempfile.TemporaryDirectory() as folder:
        if ray.train.get_context().get_world_rank() != 0:
            ray.train.report(metrics)
            return
        handler.save(Path(folder))
        state = Path(folder) / STATE_DIR
        state.mkdir()
        (state / "config.json").write_text(config.model_dump_json())
        # tokens as this rank's share of the total, so that every rank restores its part
        share = metrics["trained_tokens"] / ray.train.get_context().get_world_size()
        (state / "progress.json").write_text(json.dumps(vars(progress) | {"tokens": share}))
        torch.save(
            {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()},
            state / "optimizer.pt",
        )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _restore(checkpoint_dir: Path, optimizer, schedule) -> Progress:
    state = checkpoint_dir / STATE_DIR
    saved = torch.load(state / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    return Progress(**json.loads((state / "progress.json").read_text()))


def _features(context: dict[str, Any], handler, spec, cache_dir: Path, store) -> tuple:
    """(this rank's training features, the validation features, total training features).

    Each rank tokenizes only its shard, once: the features are cached on disk under a key
    of the rows, the base model and the settings, so a restarted worker reads them back.
    Ranks keep equally many features, so that DDP steps stay in lockstep.
    """
    train_context = ray.train.get_context()
    rank, world = train_context.get_world_rank(), train_context.get_world_size()
    config = TrainingConfig.model_validate(context["training"])

    def featurize(rows: list[dict]) -> list[dict]:
        return handler.training_features([spec.Row(**row) for row in rows])

    same = (
        context["base_uri"],
        config.max_sequence_length,
        context["new_labels"],
        config.head_labels,
    )
    rows = shard(open_rows(store.local_file(context["train_uri"])), rank, world)
    key = fingerprint(context["train_uri"], rank, world, *same)
    train = tokenized(rows, featurize, cache_dir, f"train-{key}")
    validation_rows = open_rows(store.local_file(context["validation_uri"]))
    key = fingerprint(context["validation_uri"], *same)
    validation = tokenized(validation_rows, featurize, cache_dir, f"validation-{key}")
    kept = fewest(len(train))
    if len(train) > kept:
        train = train.select(range(kept))
    return train, validation, kept * world


def train_loop_per_worker(context: dict[str, Any]) -> None:
    # --- set-up: stores, model (from the last checkpoint if restarted), data -------------
    configure_logging()
    config = TrainingConfig.model_validate(context["training"])
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    cache_dir = Path(context["artifacts"]["cache_dir"])
    store = ArtifactStore(context["artifacts"]["url"], cache_dir)
    reporter, job_id = context["reporter"].handle(), context["job_id"]
    rank = ray.train.get_context().get_world_rank()
    spec = TaskCatalog.load(context["tasks"]["modules"]).get(context["task"])
    checkpoint = ray.train.get_checkpoint()
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as resumed:
        handler = initial_model(spec, config, context, store, Path(resumed) if resumed else None)
        features, validation_features, total = _features(
            context, handler, spec, cache_dir / "features", store
        )
        loader = ray.train.torch.prepare_data_loader(
            DataLoader(
                features,
                batch_size=config.batch_size,
                shuffle=True,
                collate_fn=handler.collate,
                generator=torch.Generator().manual_seed(config.seed),
            ),
            add_dist_sampler=False,  # each rank already holds only its shard
        )
        model = ray.train.torch.prepare_model(handler.model)
        optimizer = make_optimizer(model, config)
        total_steps = max(1, len(loader) * config.n_epochs)
        schedule = make_schedule(optimizer, config, total_steps)
        progress = _restore(Path(resumed), optimizer, schedule) if resumed else Progress()

    if rank == 0:
        start = f"resumed at step {progress.step} (epoch {progress.epoch} done)" if resumed else ""
        _report(
            reporter,
            job_id,
            f"workers ready: {total} training examples loaded" + (f"; {start}" if start else ""),
            # where rank 0 trains: on a cluster, the node (and so the pod) to look at
            {"node_id": ray.get_runtime_context().get_node_id()}
            | ({"resumed_at_step": progress.step} if resumed else {}),
        )
    run = _Run(config, reporter, job_id, rank, handler, model, optimizer, schedule, total_steps)
    for number in range(progress.epoch + 1, config.n_epochs + 1):
        if run.end_epoch(run.epoch(number, loader, progress), total, validation_features, progress):
            break


@dataclass
class _Run:
    """One worker's loop state: the phases below read it instead of a dozen arguments."""

    config: TrainingConfig
    reporter: Any  # the runner actor's handle
    job_id: str
    rank: int
    handler: Any
    model: Any
    optimizer: Any
    schedule: Any
    total_steps: int

    def epoch(self, epoch: int, loader, progress: Progress) -> Epoch:
        """Train one epoch (until its end, or a cancel)."""
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        self.model.train()
        started, batches = time.perf_counter(), 0
        epoch_loss, config = 0.0, self.config
        bfloat16 = uses_bfloat16(config, next(self.model.parameters()).device)
        for batch in loader:
            loss = train_step(
                self.model, batch, self.optimizer, self.schedule, config.max_grad_norm, bfloat16
            ).item()
            progress.step += 1
            batches += 1
            epoch_loss += loss
            progress.tokens += float(batch["attention_mask"].sum())
            if progress.step == 1 and self.rank == 0:
                _report(self.reporter, self.job_id, f"first step done: loss {loss:.4f}")
            checks = progress.step % config.check_every_steps == 0
            if checks and all_agree(self._step_event(epoch, progress.step, loss)):
                return Epoch(epoch, epoch_loss, batches, time.perf_counter() - started, True)
        return Epoch(epoch, epoch_loss, batches, time.perf_counter() - started, False)

    def _step_event(self, epoch: int, step: int, loss: float) -> bool:
        """Rank 0 reports the step; every rank learns whether the job was cancelled."""
        if self.rank != 0:
            return _report(self.reporter, self.job_id)
        return _report(
            self.reporter,
            self.job_id,
            f"step {step}/{self.total_steps}: loss {loss:.4f}",
            {
                "step": step,
                "epoch": epoch,
                "total_steps": self.total_steps,
                "train_loss": loss,
                "learning_rate": self.schedule.get_last_lr()[0],
            },
        )

    def end_epoch(self, epoch: Epoch, examples: int, validation_features, progress) -> bool:
        """Validate, checkpoint, and say whether to stop (cancel or early stopping)."""
        validation_loss = _validation_loss(
            self.model, self.handler, validation_features, self.config.batch_size
        )
        metrics = {
            "epoch": epoch.number,
            "step": progress.step,
            "train_loss": epoch.loss / max(1, epoch.batches),
            "validation_loss": validation_loss,
            "cancelled": epoch.cancelled,
            "trained_tokens": int(total_over_ranks(progress.tokens)),
            "trained_examples": examples * epoch.number,
            # this rank's training steps in this epoch: throughput without validation's share
            "epoch_train_seconds": round(epoch.seconds, 3),
        }
        if self.rank == 0:
            # the epoch's mean loss, named apart from the steps' latest train_loss
            event = {k: v for k, v in metrics.items() if k != "train_loss"}
            event["epoch_train_loss"] = metrics["train_loss"]
            _report(
                self.reporter,
                self.job_id,
                f"epoch {epoch.number} done: validation loss {validation_loss}",
                event,
            )
        if validation_loss is not None and validation_loss < progress.best_loss:
            progress.best_loss, progress.stale = validation_loss, 0
        else:
            progress.stale += 1
        progress.epoch = epoch.number
        _save_checkpoint(
            self.handler, self.config, self.optimizer, self.schedule, progress, metrics
        )
        patience = self.config.early_stopping_patience
        return epoch.cancelled or bool(patience and progress.stale >= patience)
