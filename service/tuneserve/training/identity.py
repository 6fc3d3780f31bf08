"""How the cluster finds its one JobRunner: a named, detached Ray actor per application.

Apart from ``runner.py`` so that the gateway and the training workers can look the runner
up without importing the training pipeline (Ray Train, datasets, transformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

RUNNER_NAME = "tuneserve-job-runner"


@dataclass(frozen=True)
class RunnerAddress:
    """Where a run's workers find the runner they report to: its name, not its handle.

    Unpickling an actor handle makes Ray import the actor's class, and a handle in the
    workers' config is unpickled by every process that carries the config: Ray Train's
    controller spent 5 to 7 s of each job's start importing the whole training package for
    a handle it never calls. A name costs nothing to carry; the workers resolve it.
    """

    namespace: str  # the application's name: one runner per application
    name: str = RUNNER_NAME

    def handle(self) -> Any:
        return ray.get_actor(self.name, namespace=self.namespace)
