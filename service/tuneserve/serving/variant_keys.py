"""Which form of a version a request runs: its resident key ``(name, version, variant)``.

A request names a variant or leaves it to the version's record (the variant verified to
serve, else fp32). Keys are resolved here, before the resident lookup, so that asking for
the variant that serves anyway shares its resident copy instead of loading a second one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from tuneserve.errors import InvalidRequest
from tuneserve.registry import ArtifactStore, Registry, VersionInfo
from tuneserve.serving.resident import Key
from tuneserve.tasks.handlers.by_size import BY_SIZE
from tuneserve.tasks.handlers.variants import FP32, served_variant


class VariantKeys:
    """Resident keys from the version records a replica has read (each once: a version
    never changes)."""

    def __init__(
        self,
        connected: Awaitable[tuple[Registry, ArtifactStore]],
        device: str,
        task_varies: bool = True,
    ):
        self._connected = connected
        self._device = device
        self._task_varies = task_varies  # the task is one of ``tasks.variants.tasks``
        self._versions: dict[tuple[str, int], VersionInfo] = {}

    async def version(self, name: str, number: int) -> VersionInfo:
        version = self._versions.get((name, number))
        if version is None:
            registry, _ = await self._connected
            version = await asyncio.to_thread(registry.get_version, name, number)
            self._versions[(name, number)] = version
        return version

    async def key(self, name: str, number: int, variant: str | None) -> Key:
        """The key of a request for ``variant`` of ``name@number`` (None: the one that serves).

        Optimised variants run on CPU, for the tasks that have them, on versions with
        weights of their own: a version of another task (a decoder: ONNX export is for
        encoders), a LoRA version, or a replica on a GPU serves fp32 and refuses another
        variant (400).
        """
        version = await self.version(name, number)
        fixed = self._fixed_to_fp32(version)
        if variant is None:
            return name, number, FP32 if fixed else served_variant(version.variants)
        if variant != FP32 and fixed:
            raise InvalidRequest(
                f"variant {variant!r} is not available on {fixed}", param="variant"
            )
        if variant == BY_SIZE and BY_SIZE not in version.variants:
            raise InvalidRequest(
                f"variant 'by-size' was not verified for {name}@{number}: it needs two verified "
                "variants, each fastest at one batch size (see the version's variants)",
                param="variant",
            )
        return name, number, variant

    def _fixed_to_fp32(self, version: VersionInfo) -> str | None:
        """Where ``version`` runs as fp32 only, said for an error; None where it may vary."""
        if not self._task_varies:
            return f"a {version.task} model (tasks.variants.tasks)"
        if version.weights_base:
            return "a LoRA version"
        if self._device != "cpu":
            return f"a {self._device} replica"
        return None


def label(key: Key) -> str:
    """``name@version``, with ``:variant`` unless it is fp32 (logs, ``info``, readiness)."""
    name, number, variant = key
    return f"{name}@{number}" + ("" if variant == FP32 else f":{variant}")
