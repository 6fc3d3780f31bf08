"""TaskServer: one Ray Serve deployment per task, wrapping that task's handler.

It is the ingress of its task's own Serve application: the proxy hands it the task's HTTP
requests (``front.py``), and the control plane reaches every replica by handle. A replica
keeps several model versions resident (LRU, production pinned), loads them off the event
loop, warms each on load, and batches requests per version — so requests for two versions
never share a batch. Chat streams go through a continuous-batching engine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
import torch
from ray import serve

from tuneserve.errors import NotFound
from tuneserve.logs import configure_logging
from tuneserve.registry import connect, refuse_node_local
from tuneserve.serving.batcher import Batcher, BatchRecord, RecentBatches, problems_alone
from tuneserve.serving.chat_engine import ChatEngine
from tuneserve.serving.chat_streams import StreamSlots
from tuneserve.serving.front import TaskFront
from tuneserve.serving.packing import by_length, estimated_tokens
from tuneserve.serving.resident import Key, Resident, ResidentModels
from tuneserve.serving.variant_keys import VariantKeys, label
from tuneserve.serving.version_metrics import VersionMetrics
from tuneserve.settings import TaskServerSettings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.tasks.handlers.lora import AdapterHost
from tuneserve.tasks.handlers.variants import as_variant
from tuneserve.telemetry import Recorder

logger = logging.getLogger("tuneserve.task_server")


class TaskServer:
    """Serves every model of one task: its route over HTTP, the control plane by handle."""

    def __init__(self, task: str, settings: TaskServerSettings):
        configure_logging()
        refuse_node_local(settings.registry, ray.nodes())
        torch.set_num_threads(settings.serving.threads())
        self.task = task
        self.settings = settings
        self.spec = TaskCatalog.load(settings.tasks.modules).get(task)
        self.options = self.spec.options(settings.tasks.options.get(task))
        self.handler_class = self.spec.handler_class()
        # a replica given a GPU (num_gpus) runs its models there; Ray sets CUDA_VISIBLE_DEVICES
        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        # one model thread per replica: batches run one after another, never oversubscribed
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{task}-model")
        self.recorder = Recorder(settings.telemetry.metrics_enabled)
        # one cap on the chat streams of this replica, whichever of its models they use
        self._stream_slots = StreamSlots(settings.serving.max_streams_per_replica)
        self._batches = RecentBatches()  # for ``info``
        self._load_options = {
            "device": self.device,
            "max_length": settings.limits.max_sequence_length,
            "options": self.options,
        }
        # LoRA versions share one resident copy of the full weights they run on
        self.adapters = AdapterHost(self.handler_class, **self._load_options)
        self.models = ResidentModels(settings.serving.resident_versions, self._load, self._evicted)
        # nothing here waits on the database or a model: the replica starts at once and
        # reports ready (``ready``) only when its production versions are loaded and warm
        loop = asyncio.get_running_loop()
        self._connected = loop.create_task(asyncio.to_thread(connect, settings.registry))
        self._production: dict[str, Key] = {}  # model name → its production's resident key
        self.keys = VariantKeys(self._connected, self.device, task in settings.tasks.variants.tasks)
        self.front = TaskFront(self.spec, settings, self._connected, self.predict, self.chat)
        self._failed: dict[Key, str] = {}  # versions that could not load, and why
        self._startup = loop.create_task(self._load_production())
        if self.recorder.enabled:
            self._gauges = loop.create_task(self._refresh_gauges())

    async def _refresh_gauges(self) -> None:
        while True:
            for resident in self.models.loaded():
                resident.metrics.resident()
            await asyncio.sleep(self.settings.telemetry.gauge_refresh_s)

    async def _in_model_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, fn, *args)

    # --- loading -----------------------------------------------------------------------
    async def _load_production(self) -> None:
        """Pin and load the production version of every model of this task.

        A version that fails to load is recorded (``ready`` names it) and the others load.
        """
        registry, _ = await self._connected
        models = await asyncio.to_thread(registry.list_models)
        for model in (m for m in models if m.task == self.task):
            try:
                version = await asyncio.to_thread(registry.resolve, model.name, None)
            except NotFound:
                continue  # a model with no production version yet
            self._production[model.name] = await self.keys.key(model.name, version.version, None)
        for key in self._production.values():
            self.models.pinned.add(key)
            try:
                await self.models.get(key)
            except Exception as error:
                logger.exception("could not load %s@%s", *key)
                self._failed[key] = f"{type(error).__name__}: {error}"

    async def _load(self, key: Key) -> Resident:
        name, number, variant = key
        metrics = VersionMetrics(self.recorder, self.task, name, number)
        started = time.perf_counter()
        try:
            handler = await self._load_handler(name, number, variant)
        except Exception:
            metrics.load_failed()
            raise
        serving = self.settings.serving
        if self.spec.streams:
            runtime: Any = ChatEngine(
                handler,
                self._in_model_thread,
                serving.max_batch_size,
                serving.stream_interval_s,
                metrics,
                stream_timeout_s=serving.chat_stream_timeout_s,
                join_window_s=serving.chat_join_window_s,
                slots=self._stream_slots,
                name=label(key),
            )
        else:
            runtime = Batcher(
                lambda items, h=handler: self._predict_batch(h, metrics, items),
                serving.max_batch_size,
                serving.batch_wait_timeout_s,
                on_batch=functools.partial(self._batch_started, label(key), metrics),
                # a failed batch: which requests fail alone (preprocessed one by one)
                check=lambda requests, h=handler: self._in_model_thread(
                    problems_alone, h.preprocess, requests
                ),
            )
        seconds = time.perf_counter() - started
        metrics.loaded(seconds)
        logger.info("loaded %s", label(key))
        return Resident(key, handler, runtime, metrics, load_seconds=seconds)

    async def _load_handler(self, name: str, number: int, variant: str) -> TaskHandler:
        """Read the version's artifact, load it on the model thread as ``variant`` and warm
        it up."""
        _, store = await self._connected
        version = await self.keys.version(name, number)
        path = await asyncio.to_thread(store.verified_path, version.artifact_uri, version.sha256)
        if version.weights_base:  # a LoRA version: its adapter on the shared base
            base = await asyncio.to_thread(store.verified_path, *version.weights_base)
            handler = await self._in_model_thread(self.adapters.add, f"{name}@{number}", base, path)
        else:
            load = functools.partial(self.handler_class.load, path, **self._load_options)
            fp32 = await self._in_model_thread(load)
            handler = await self._in_model_thread(as_variant, fp32, variant, version.variants)
        example = self.spec.Item(**self.spec.example)
        await self._in_model_thread(handler.predict, [example])  # warm-up
        return handler

    def _evicted(self, resident: Resident) -> None:
        # another variant of the same version may stay: its series (per version) stays up
        if not any(other.key[:2] == resident.key[:2] for other in self.models.loaded()):
            resident.metrics.evicted()
        # on the model thread, after the batches already queued there
        self._model_thread.submit(self.adapters.release, "{}@{}".format(*resident.key[:2]))

    async def _predict_batch(
        self, handler: TaskHandler, metrics: VersionMetrics, items: list
    ) -> list:
        """Outputs of one batch, in order: its items sorted by length and run in groups of
        at most ``serving.batch_token_budget`` padded tokens (``packing``)."""
        lengths = [estimated_tokens(self.spec.text_of(item)) for item in items]
        groups = by_length(lengths, self.settings.serving.batch_token_budget)
        started = time.perf_counter()
        outputs, tokens = await self._in_model_thread(handler.predict_groups, items, groups)
        metrics.batch_done(time.perf_counter() - started, tokens)
        return outputs

    # --- requests ----------------------------------------------------------------------
    async def authenticate(self, header: bytes | None):
        """The caller of an HTTP request to this replica (``deps.caller``)."""
        return await self.front.authenticate(header)

    async def predict(
        self, name: str, version: int, items: list, variant: str | None = None
    ) -> dict[str, Any]:
        """Outputs for ``items`` (validated) from ``name@version`` as ``variant`` (None: the
        one that serves), batched with concurrent calls; as JSON-ready dicts, the form the
        response is sent in, with the variant that ran them."""
        resident = await self._resident(name, version, len(items), variant)
        try:
            outputs = await resident.runtime.submit(items)
        except Exception:
            resident.metrics.request(ok=False, items=len(items))
            raise
        resident.metrics.request(ok=True, items=len(items))
        return {"variant": resident.key[2], "results": [output.model_dump() for output in outputs]}

    async def chat(self, name: str, version: int, item) -> AsyncIterator[dict]:
        """Stream one chat completion: a dict per step, usage counts on the last one."""
        resident = await self._resident(name, version, 1, None)
        ok = False
        try:
            engine: ChatEngine = resident.runtime
            async for delta in engine.generate(item):
                event = {"text": delta.text, "finish_reason": delta.finish_reason}
                if delta.finish_reason is not None:
                    event["usage"] = delta.usage
                    ok = True
                yield event
        finally:  # a client that went away before the end counts as an error too
            resident.metrics.request(ok=ok)

    async def _resident(self, name: str, version: int, items: int, variant: str | None) -> Resident:
        """The loaded version; a request for one that cannot load is counted as failed."""
        try:
            return await self.models.get(await self.keys.key(name, version, variant))
        except Exception:
            VersionMetrics(self.recorder, self.task, name, version).request(False, items)
            raise

    # --- control plane -----------------------------------------------------------------
    async def load_version(self, name: str, version: int) -> dict:
        """Load and warm ``name@version`` here (a promotion's first phase); pins it."""
        key = await self.keys.key(name, version, None)
        self.models.pinned.add(key)
        resident = await self.models.get(key)
        replica = serve.get_replica_context().replica_id.unique_id
        return {
            "replica_id": replica,
            "model": name,
            "version": version,
            "variant": key[2],
            "load_seconds": resident.load_seconds,
        }

    async def set_pins(self, name: str, versions: list[int]) -> list[int]:
        """Keep exactly ``versions`` of ``name`` pinned (production and the previous one)."""
        keys = [await self.keys.key(name, v, None) for v in versions]
        self.models.pinned = {k for k in self.models.pinned if k[0] != name} | set(keys)
        self._production[name] = keys[0]
        self.front.forget(name)  # production moved: this replica's next request reads it
        return sorted(versions)

    async def ready(self) -> dict:
        """Whether this replica serves its task, and if not, what it waits for.

        Ready means: at least one model of the task has a production version, and every
        production version is loaded and warm here. A replica that found none looks again
        at each call, so models registered later (``tuneserve models build``) are picked up.
        """
        waiting = self._waiting_for()
        return {"ready": not waiting, "waiting_for": waiting}

    def _waiting_for(self) -> list[str]:
        if not self._startup.done():
            return [f"the production versions of the {self.task} models (loading)"]
        if (error := self._startup.exception()) is not None:
            return [f"start-up failed: {error}"]
        if not self._production:
            self._startup = asyncio.get_running_loop().create_task(self._load_production())
            return [f"a production version of a {self.task} model (none is registered)"]
        loaded = {resident.key for resident in self.models.loaded()}
        return [
            f"{label(key)} ({self._failed.get(key, 'loading')})"
            for _, key in sorted(self._production.items())
            if key not in loaded
        ]

    def _batch_started(self, version: str, metrics: VersionMetrics, record: BatchRecord) -> None:
        metrics.batch_started(record)
        self._batches.add(version, record)

    async def info(self) -> dict:
        """Replica id, resident versions and recent batch shapes (tests, debugging)."""
        context = serve.get_replica_context()
        chat = {
            label(resident.key): vars(resident.runtime.stats)
            for resident in self.models.loaded()
            if not isinstance(resident.runtime, Batcher)
        }
        return {
            "replica_id": context.replica_id.unique_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "resident": [label(resident.key) for resident in self.models.loaded()],
            "batches": self._batches.by_version(),
            "chat": chat,
            "adapter_bases": self.adapters.bases(),
        }
