"""The model versions loaded in one replica: an LRU with pinned entries.

Loading runs off the event loop and is shared: concurrent requests for a version that is
still loading wait for the same load. Pinned versions (production, and after a swap the
previous production) are never evicted.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, int, str]  # (model name, version, variant: "fp32", "int8", ...)


@dataclass
class Resident:
    key: Key
    handler: Any  # the variant's own handler (an int8 copy of the weights, say)
    runtime: Any = None  # what the server builds around the handler (batcher, engine)
    metrics: Any = None  # the version's VersionMetrics in a task server
    load_seconds: float = 0.0  # load and warm-up, as measured by whoever loaded it


class ResidentModels:
    def __init__(
        self,
        capacity: int,
        load: Callable[[Key], Awaitable[Resident]],
        on_evict: Callable[[Resident], None] = lambda resident: None,
    ):
        self.capacity = capacity
        self._load = load
        self._on_evict = on_evict
        self._entries: OrderedDict[Key, Resident] = OrderedDict()
        self._loading: dict[Key, asyncio.Future] = {}
        self.pinned: set[Key] = set()

    def loaded(self) -> list[Resident]:
        """Every resident version, least recently used first (does not touch the order)."""
        return list(self._entries.values())

    async def get(self, key: Key) -> Resident:
        """The resident version ``key``, loading it (and evicting the LRU one) if needed."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        if key not in self._loading:
            self._loading[key] = asyncio.ensure_future(self._load_and_keep(key))
        return await asyncio.shield(self._loading[key])

    async def _load_and_keep(self, key: Key) -> Resident:
        try:
            resident = await self._load(key)
            self._entries[key] = resident
            self._evict()
            return resident
        finally:
            self._loading.pop(key, None)

    def _evict(self) -> None:
        for key in list(self._entries):
            if len(self._entries) <= self.capacity:
                return
            if key not in self.pinned:
                self._on_evict(self._entries.pop(key))
