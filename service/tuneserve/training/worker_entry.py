"""Ray Train's entry point on a training worker, light to import where it is only passed on.

The ``TorchTrainer`` (and so this function) is pickled into the process that calls ``fit``
and into Ray Train's controller, which both import the function's module to unpickle it but
never run it. Importing the training loop there (torch data loading, transformers, the task
handlers) cost seconds in each, one after another, of a job's start; here only the worker
that runs the loop imports it.
"""

from __future__ import annotations

from typing import Any


def train_loop_per_worker(context: dict[str, Any]) -> None:
    from tuneserve.training.loop import train_loop_per_worker as run_loop

    run_loop(context)
