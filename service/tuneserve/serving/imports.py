"""Model imports (and LoRA merges) run in a Ray task of their own, not in the gateway.

An import downloads a model and loads it once with torch, which would put the model (and
torch) into the gateway's memory for good; a task's worker takes that cost and returns
only the answer. It asks for no CPU: on a cluster whose CPUs the replicas have reserved,
a task that asked for one would wait forever. The import and merge code is imported inside
the tasks: the gateway's routes load this module, and a merge imports PEFT and torch at once
(632 MB resident in every gateway replica, and 6 s more to start one).
"""

from __future__ import annotations

import ray
from ray.exceptions import RayTaskError

from tuneserve.api.imports import ImportedModel, ImportModelRequest
from tuneserve.api.tasks import VersionPublic
from tuneserve.errors import TuneserveError
from tuneserve.logs import configure_logging
from tuneserve.settings import Settings


@ray.remote(num_cpus=0, max_retries=0)
def _run_import(settings: Settings, request: ImportModelRequest) -> ImportedModel:
    from tuneserve.control.model_import import import_with

    configure_logging()
    return import_with(settings, request)


async def run_import(settings: Settings, request: ImportModelRequest) -> ImportedModel:
    """The import's answer; a refusal raised in the task is raised here as itself."""
    try:
        return await _run_import.remote(settings, request)
    except RayTaskError as error:
        if isinstance(error.cause, TuneserveError):
            raise error.cause from None
        raise


@ray.remote(num_cpus=0, max_retries=0)
def _run_merge(settings: Settings, name: str, version: int) -> VersionPublic:
    from tuneserve.control.model_merge import merge_with

    configure_logging()
    return merge_with(settings, name, version)


async def run_merge(settings: Settings, name: str, version: int) -> VersionPublic:
    """A LoRA version merged into a full one, in a task of its own as an import is."""
    try:
        return await _run_merge.remote(settings, name, version)
    except RayTaskError as error:
        if isinstance(error.cause, TuneserveError):
            raise error.cause from None
        raise
