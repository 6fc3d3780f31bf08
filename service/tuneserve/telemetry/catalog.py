"""Every metric tuneserve exports, in one place: name, type, labels, buckets, meaning.

Two families, by where the truth lives:

- ``REPLICA_METRICS`` are recorded where things happen (gateway, task-server replicas, the
  promoter, the job runner) through Ray's metrics API, and exported by the Ray metrics agent
  of each node.
  Ray prefixes them ``ray_``; the scrape config we ship renames them back to ``tuneserve_``.
- ``REGISTRY_METRICS`` are read from the registry at scrape time by the gateway's
  ``/metrics`` (versions, aliases, jobs), so every gateway replica gives the same answer.

Labels are bounded: task, model, version, route template, status class, never user input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
JOB_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

SERVED = ("task", "model", "version")


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as recorded: counters without ``_total``, which the exporters append
    kind: Kind
    description: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @cached_property
    def label_set(self) -> frozenset[str]:
        """The labels as a set, made once: recording checks every call against it."""
        return frozenset(self.labels)

    @property
    def exported(self) -> tuple[str, ...]:
        """The sample names Prometheus stores for this metric."""
        if self.kind == "counter":
            return (f"{self.name}_total",)
        if self.kind == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return (self.name,)


# --- per replica: the gateway ---------------------------------------------------------
HTTP_REQUESTS = MetricSpec(
    "tuneserve_http_requests",
    "counter",
    "HTTP requests answered by the gateway, by route template and status class.",
    ("route", "method", "status_class", *SERVED),
)
HTTP_DURATION = MetricSpec(
    "tuneserve_http_request_duration_seconds",
    "histogram",
    "Gateway time from request to response headers (for a stream: to its first byte).",
    ("route", "status_class", *SERVED),
    LATENCY_BUCKETS,
)

# --- per replica: task servers --------------------------------------------------------
INFERENCE_REQUESTS = MetricSpec(
    "tuneserve_inference_requests",
    "counter",
    "Requests a task-server replica served, by model version and outcome (ok | error).",
    (*SERVED, "outcome"),
)
INFERENCE_ITEMS = MetricSpec(
    "tuneserve_inference_items",
    "counter",
    "Inputs in the requests a replica served (texts, question-context pairs, chats).",
    SERVED,
)
QUEUE_DURATION = MetricSpec(
    "tuneserve_queue_duration_seconds",
    "histogram",
    "Time a request waited in its replica for a batch (one observation per "
    "max_batch_size chunk of a larger request; chat: wait for a decoding slot).",
    SERVED,
    QUEUE_BUCKETS,
)
BATCH_SIZE = MetricSpec(
    "tuneserve_batch_size",
    "histogram",
    "Items per model batch (chat: sequences per decoding step). Ray reports a histogram's "
    "_sum from bucket midpoints: divide tuneserve_inference_items_total by _count instead.",
    SERVED,
    BATCH_BUCKETS,
)
BATCH_DURATION = MetricSpec(
    "tuneserve_batch_duration_seconds",
    "histogram",
    "Model time of one batch (chat: of one decoding step).",
    SERVED,
    QUEUE_BUCKETS,
)
INPUT_TOKENS = MetricSpec(
    "tuneserve_input_tokens",
    "counter",
    "Tokens read by the model (padding excluded; chat: prompt tokens).",
    SERVED,
)
OUTPUT_TOKENS = MetricSpec(
    "tuneserve_output_tokens",
    "counter",
    "Tokens generated (translation and chat).",
    SERVED,
)
TIME_TO_FIRST_TOKEN = MetricSpec(
    "tuneserve_time_to_first_token_seconds",
    "histogram",
    "Chat: time from a request reaching its replica to its first generated token.",
    SERVED,
    LATENCY_BUCKETS,
)
GENERATION_RATE = MetricSpec(
    "tuneserve_generation_tokens_per_second",
    "histogram",
    "Chat: decoding speed of each completion after its first token.",
    SERVED,
    RATE_BUCKETS,
)
RESIDENT_VERSIONS = MetricSpec(
    "tuneserve_resident_versions",
    "gauge",
    "1 while a replica holds a model version in memory, 0 once it is evicted.",
    SERVED,
)
MODEL_LOADS = MetricSpec(
    "tuneserve_model_loads",
    "counter",
    "Model version loads into a replica, by outcome (ok | error).",
    (*SERVED, "outcome"),
)
MODEL_LOAD_DURATION = MetricSpec(
    "tuneserve_model_load_duration_seconds",
    "histogram",
    "Time to load and warm one model version in a replica.",
    SERVED,
    LOAD_BUCKETS,
)

# --- per promoter: swaps --------------------------------------------------------------
SWAPS = MetricSpec(
    "tuneserve_swaps",
    "counter",
    "Moves of a model's production alias: kind promotion | rollback, outcome ok | error.",
    ("task", "model", "kind", "outcome"),
)
SWAP_DURATION = MetricSpec(
    "tuneserve_swap_duration_seconds",
    "histogram",
    "Time of a successful swap: load and warm on every replica, then move the alias.",
    ("task", "model", "kind"),
    LOAD_BUCKETS,
)

# --- the job runner -------------------------------------------------------------------
RUNNER_HEARTBEAT_AGE = MetricSpec(
    "tuneserve_job_runner_heartbeat_age_seconds",
    "gauge",
    "Seconds since the job runner's worker loop last went round (or showed life while it "
    "supervises a job); set by the runner every telemetry.gauge_refresh_s, so a runner "
    "that is gone leaves no series: alert on a large value and on absence.",
    (),
)

REPLICA_METRICS = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    INFERENCE_REQUESTS,
    INFERENCE_ITEMS,
    QUEUE_DURATION,
    BATCH_SIZE,
    BATCH_DURATION,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    TIME_TO_FIRST_TOKEN,
    GENERATION_RATE,
    RESIDENT_VERSIONS,
    MODEL_LOADS,
    MODEL_LOAD_DURATION,
    SWAPS,
    SWAP_DURATION,
    RUNNER_HEARTBEAT_AGE,
)

# --- from the registry, at scrape time ------------------------------------------------
JOB = ("job_id", "model", "task")
BUILD_INFO = MetricSpec(
    "tuneserve_build_info", "gauge", "Always 1; the tuneserve release serving.", ("version",)
)
REGISTRY_UP = MetricSpec(
    "tuneserve_registry_up", "gauge", "1 if this scrape could read the registry.", ()
)
VERSION_INFO = MetricSpec(
    "tuneserve_model_version_info",
    "gauge",
    "Always 1: the version each alias of each model points to.",
    ("model", "task", "alias", "version"),
)
VERSION_EVALUATION = MetricSpec(
    "tuneserve_model_version_evaluation",
    "gauge",
    "Held-out evaluation metrics recorded with each registered version.",
    ("model", "task", "version", "metric"),
)
JOBS = MetricSpec(
    "tuneserve_fine_tuning_jobs", "gauge", "Fine-tuning jobs in each state.", ("task", "state")
)
JOB_DURATION = MetricSpec(
    "tuneserve_fine_tuning_job_duration_seconds",
    "histogram",
    "Creation to end of every finished fine-tuning job, by final state.",
    ("task", "state"),
    JOB_BUCKETS,
)
TRAINING_STEP = MetricSpec(
    "tuneserve_fine_tuning_step", "gauge", "Optimizer steps done by a running job.", JOB
)
TRAINING_TOTAL_STEPS = MetricSpec(
    "tuneserve_fine_tuning_total_steps", "gauge", "Optimizer steps a running job plans.", JOB
)
TRAINING_EPOCH = MetricSpec(
    "tuneserve_fine_tuning_epoch", "gauge", "Epoch a running job is in (from 1).", JOB
)
TRAINING_LOSS = MetricSpec(
    "tuneserve_fine_tuning_train_loss", "gauge", "Latest training loss of a running job.", JOB
)
TRAINING_LEARNING_RATE = MetricSpec(
    "tuneserve_fine_tuning_learning_rate",
    "gauge",
    "Current learning rate of a running job.",
    JOB,
)

REGISTRY_METRICS = (
    BUILD_INFO,
    REGISTRY_UP,
    VERSION_INFO,
    VERSION_EVALUATION,
    JOBS,
    JOB_DURATION,
    TRAINING_STEP,
    TRAINING_TOTAL_STEPS,
    TRAINING_EPOCH,
    TRAINING_LOSS,
    TRAINING_LEARNING_RATE,
)

ALL_METRICS = REPLICA_METRICS + REGISTRY_METRICS


def exported_names() -> set[str]:
    """Every sample name a scrape of tuneserve yields (after the shipped relabelling)."""
    return {name for spec in ALL_METRICS for name in spec.exported}
