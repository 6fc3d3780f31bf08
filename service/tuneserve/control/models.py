"""ModelService: read the registry's models and versions, move production.

Requests resolve their model references in the task servers (``serving/front.py``), each
from its own cached view; a move here reaches them through the fleet (``set_pins``).
"""

from __future__ import annotations

from tuneserve.api.fine_tuning import AliasMovePublic, PromoteRequest, RollbackRequest
from tuneserve.api.tasks import ModelList, ModelPublic, VersionList, VersionPublic
from tuneserve.control.promotion import PROMOTED, Fleet, Swap, promote, rollback
from tuneserve.registry import Registry
from tuneserve.telemetry import Recorder


class ModelService:
    """The model use cases of one gateway (or of the job runner, for a job's promotion)."""

    def __init__(self, registry: Registry, fleet: Fleet, recorder: Recorder):
        self.registry = registry
        self.fleet = fleet
        self.recorder = recorder

    # --- reading -----------------------------------------------------------------------
    def list_models(self) -> ModelList:
        return ModelList(data=[ModelPublic.model_validate(m) for m in self.registry.list_models()])

    def get_model(self, name: str) -> ModelPublic:
        return ModelPublic.model_validate(self.registry.get_model(name))

    def list_versions(self, name: str) -> VersionList:
        versions = self.registry.list_versions(name)
        return VersionList(model=name, data=[VersionPublic.model_validate(v) for v in versions])

    # --- moving production -------------------------------------------------------------
    def promote(self, name: str, request: PromoteRequest) -> AliasMovePublic:
        """Load and warm the version on every replica, then make it production (a no-op
        answered with ``changed: false`` when it is production already)."""
        swap = self.swap_to(name, request.version, request.expected_from)
        return AliasMovePublic.model_validate(swap)

    def swap_to(
        self, name: str, version: int, expected_from: int | None, reason: str = PROMOTED
    ) -> Swap:
        """``promote`` for internal callers (a job's gate), returning the swap itself."""
        return promote(
            self.registry, self.fleet, name, version, expected_from, reason, self.recorder
        )

    def rollback(self, name: str, request: RollbackRequest | None = None) -> AliasMovePublic:
        """Production back to the version its last promotion replaced (still resident:
        instant), or to the version the request names."""
        version = request.version if request is not None else None
        swap = rollback(self.registry, self.fleet, name, version, self.recorder)
        return AliasMovePublic.model_validate(swap)
