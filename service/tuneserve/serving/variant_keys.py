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
from tuneserve.tasks.handlers.variants import FP32, served_variant


class VariantKeys:
    """Resident keys from the version records a replica has read (each once: a version
    never changes)."""

    def __init__(self, connected: Awaitable[tuple[Registry, ArtifactStore]], device: str):
        self._connected = connected
        self._device = device
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

        Optimised variants run on CPU, on versions with weights of their own: a LoRA
        version, or a replica on a GPU, serves fp32 and refuses another variant (400).
        """
        version = await self.version(name, number)
        may_vary = self._device == "cpu" and version.weights_base is None
        if variant is None:
            return name, number, served_variant(version.variants) if may_vary else FP32
        if variant != FP32 and not may_vary:
            where = "a LoRA version" if version.weights_base else f"a {self._device} replica"
            raise InvalidRequest(f"variant {variant!r} is not available on {where}", "variant")
        return name, number, variant


def label(key: Key) -> str:
    """``name@version``, with ``:variant`` unless it is fp32 (logs, ``info``, readiness)."""
    name, number, variant = key
    return f"{name}@{number}" + ("" if variant == FP32 else f":{variant}")
