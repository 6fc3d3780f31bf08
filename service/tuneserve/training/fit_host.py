"""Warm processes that call Ray Train's ``fit``: a job's run starts in one already waiting.

A run is a chain of process starts in series (the process that calls ``fit``, Ray Train's
controller, its workers), each paying for imports of Ray Train, torch and transformers
(5 to 12 s each on two cores). The first link is ours: the runner keeps ``warm`` host
actors that have imported all of it and hands one to each run. Each host serves one run and
is then killed: killing it is also how a run is cancelled, since Ray kills the actors it
owns (the controller, and with it the workers) along with it. Its replacement starts when
the run ends, not when it begins: its imports would compete for the cores with those of
the run's own controller and workers, which start at that moment.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.train.torch import TorchTrainer
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import tuneserve.training.loop  # noqa: F401  (imported here: what makes a host warm)


class FitHost:
    """One process, waiting (imports done) to run one ``TorchTrainer.fit``."""

    def fit(self, trainer: TorchTrainer, controller_environment: dict[str, str]) -> dict[str, Any]:
        """Ray Train v2 reads its controller's settings from the environment of the process
        that calls ``fit`` (``controller_environment``)."""
        os.environ.update(controller_environment)
        result = trainer.fit()
        return {
            "metrics": result.metrics,
            "checkpoint": result.checkpoint.path if result.checkpoint else None,
            "checkpoints": [(c.path, m) for c, m in (result.best_checkpoints or [])],
        }


def _start_host() -> ActorHandle:
    # beside the runner (its owner), as the runner sits beside the gateway: never on a
    # worker node the autoscaler may remove while it waits
    here = ray.get_runtime_context().get_node_id()
    return (
        ray.remote(FitHost)
        .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True))
        .remote()
    )


class FitHosts:
    """The runner's warm hosts: ``take`` one for a run, ``release`` it when the run ends.

    With more runs at once than ``warm``, the others start cold, as with ``warm=0`` (no
    idle process, a slower start). A host that died while it waited fails its run's first
    call, as a cold start failing would.
    """

    def __init__(self, warm: int):
        self._warm = warm
        self._idle: list[ActorHandle] = []
        self._lock = threading.Lock()  # the runner's job slots take hosts from threads
        self._top_up()

    def take(self) -> ActorHandle:
        with self._lock:
            return self._idle.pop(0) if self._idle else _start_host()

    def release(self, host: ActorHandle) -> None:
        """End a host's run (the controller and workers it owns go with it), and warm the
        host the next run takes."""
        ray.kill(host, no_restart=True)
        self._top_up()

    def _top_up(self) -> None:
        with self._lock:
            while len(self._idle) < self._warm:
                self._idle.append(_start_host())
