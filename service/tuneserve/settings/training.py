"""The training section: job runner, Ray Train workers, retries and storage collection."""

from __future__ import annotations

from pydantic import Field

from tuneserve.settings.sections import Section


class TrainingSettings(Section):
    """The job runner and Ray Train (``TUNESERVE_TRAINING__*``)."""

    max_concurrent_jobs: int = Field(default=1, ge=1, description="Jobs training at once.")
    validation_fraction: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Share of the training rows held out for "
        "evaluation when a job has no validation_file (a seeded split).",
    )
    default_epochs: int = Field(default=3, ge=1, description="n_epochs='auto'.")
    default_batch_size: int = Field(default=16, ge=1, description="batch_size='auto'.")
    cpus_per_worker: float = Field(
        default=1.0, gt=0, description="Logical CPUs each Ray Train worker reserves."
    )
    use_gpu: bool = Field(
        default=False,
        description="Train on one GPU per worker (mixed precision) when a job does not say.",
    )
    cpu_bfloat16: bool | None = Field(
        default=None,
        description="Train on CPU under bfloat16 autocast (float32 weights); default: where "
        "the CPU multiplies bfloat16 natively (AMX, AVX-512 BF16).",
    )
    wait_for_resources: bool = Field(
        default=False,
        description="On an autoscaling cluster: a job whose workers do not fit now waits up to "
        "start_timeout_s for the autoscaler to add nodes, instead of failing at once.",
    )
    worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each training worker reserves: places the workers "
        'on the nodes that advertise them, e.g. {"trainer": 1}.',
    )
    torch_threads: int = Field(default=1, ge=1, description="torch threads per worker.")
    max_failures: int = Field(
        default=2,
        ge=-1,
        description="Ray Train FailureConfig.max_failures (-1: forever): how often a run "
        "whose worker died is restarted from its latest checkpoint.",
    )
    check_every_steps: int = Field(
        default=5, ge=1, description="Steps between a progress event and a cancel check."
    )
    warm_fit_hosts: int = Field(
        default=1,
        ge=0,
        description="Processes the job runner keeps started, with Ray Train and torch "
        "imported, to begin a run in (seconds off each job's start; each holds about 600 MB "
        "while it waits). 0: a new process per run.",
    )
    start_timeout_s: float = Field(
        default=60, gt=0, description="Longest wait for the training workers to start."
    )
    controller_poll_s: float = Field(
        default=0.5,
        gt=0,
        description="How often Ray Train's controller polls its workers "
        "(RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, 2 s in Ray). It sees a run's end or a worker's "
        "failure only at a poll: 0.5 s took 2 s off each one-worker run here.",
    )
    cancel_grace_s: float = Field(
        default=5,
        ge=0,
        description="How long a cancelled job may take to stop by itself "
        "before its training task is killed.",
    )
    checkpoint_url: str | None = Field(
        default=None,
        description="Ray Train storage for epoch checkpoints; default: "
        "<artifact_url>/checkpoints, inside the artifact store.",
    )
    keep_checkpoints: int = Field(
        default=2,
        ge=0,
        description="Checkpoints kept per finished job (its newest); storage collection "
        "deletes the older ones, row and files. The checkpoint that became a version's "
        "weights belongs to the version and is never deleted by this.",
    )
    gc_interval_s: float = Field(
        default=3600,
        ge=0,
        description="Seconds between the job runner's storage collections (old checkpoints, "
        "artifacts no record names); 0: none. The runner also collects once when it starts, "
        "and `tuneserve gc` does on demand.",
    )
    gc_grace_s: float = Field(
        default=3600,
        ge=0,
        description="How old an artifact that no record names (and no finished job owns) "
        "must be before collection deletes it: a younger one may be an upload or a "
        "registration still being written.",
    )
    gc_version_weights: bool = Field(
        default=False,
        description="Also delete the weights of old versions nothing needs: no alias, never "
        "production, named by no job's result, not the base of an unfinished job. Their "
        "rows, metrics and lineage stay. Off: every version keeps its weights.",
    )
    max_job_attempts: int = Field(
        default=3,
        ge=1,
        description="Starts of one job before an internal error (a fault that is not the "
        "job's: database, cluster, a bug) fails it for good with code internal_error; a "
        "runner that died mid-job counts as one. A job's own errors are never retried.",
    )
    retry_backoff_s: float = Field(
        default=5.0,
        gt=0,
        description="Wait before the first retry of a job after an internal error, and before "
        "the runner's loop goes on after an error of its own; doubled after each failure in "
        "a row, up to retry_backoff_max_s.",
    )
    retry_backoff_max_s: float = Field(
        default=300.0, gt=0, description="Longest wait between two retries (see retry_backoff_s)."
    )
    poll_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often an idle runner looks at the queue unasked (a new job or a "
        "cancel wakes it at once); also how often its heartbeat beats while idle.",
    )
