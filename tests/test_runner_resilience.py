"""The job runner's loop and a job's phases without Ray: a real SQLite registry and artifact
store, the pipeline as it runs, and train and evaluate phases of the test's own (the two
that need a cluster; ``test_runner_redeploy`` runs the real ones).

Checked here: the loop outlives every error and backs off; an internal error is retried,
then fails the job cleanly with a reference, never with its text; a job's own failure is
not retried; a cancel is honoured in every state up to the promotion; the heartbeat shows a
stuck loop; the training workers' config holds no database URL.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from tuneserve.api.fine_tuning import Promotion
from tuneserve.errors import InvalidRequest
from tuneserve.registry import ArtifactStore, Registry, connect, weights_sha256
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.training.config import TrainingConfig
from tuneserve.training.context import JobContext
from tuneserve.training.dataset import ArrowRowWriter
from tuneserve.training.identity import RunnerAddress
from tuneserve.training.loop import STATE_DIR
from tuneserve.training.supervisor import JobSupervisor, Slot, backoff
from tuneserve.training.trainer import (
    JobFailure,
    Plan,
    TrainOutcome,
    _trainer,
    controller_environment,
)

MODEL = "clf"
LABELS = {"0": "negative", "1": "positive"}
SECRET_URL = "postgresql+psycopg://tuneserve:s3cret-pw@db.internal:5432/registry"
STOP = object()  # a hook's answer: the phase stops as it does when it sees a cancel


def model_folder(path: Path, config: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights" * 100)
    (path / "config.json").write_text(
        config or json.dumps({"model_type": "bert", "id2label": LABELS})
    )
    return path


class Clock:
    """The supervisor's clock, moved by the test: backoffs without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class InstrumentedJobs(JobStore):
    """The real job store, with two things injected: ``faults`` make the next N calls of a
    method fail as a locked database does, and ``after`` hooks run after a call returns (a
    user's cancel arriving at that moment, say)."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.faults: dict[str, int] = {}
        self.after: dict[str, Callable[[], None]] = {}

    def _fault(self, name: str) -> None:
        if self.faults.get(name, 0) > 0:
            self.faults[name] -= 1
            raise OperationalError("UPDATE jobs SET ...", {}, Exception("database is locked"))

    def _after(self, name: str) -> None:
        if name in self.after:
            self.after.pop(name)()

    def next_job(self, statuses, exclude=()):
        self._fault("next_job")
        return super().next_job(statuses, exclude)

    def transition(self, job_id, expected, status, **fields):
        self._fault(f"transition:{status}")
        return super().transition(job_id, expected, status, **fields)

    def get_file(self, file_id, owner=None):
        info = super().get_file(file_id, owner)
        self._after("get_file")
        return info

    def start_job(self, job_id):
        started = super().start_job(job_id)
        self._after("start_job")
        return started


class HookedRegistry(Registry):
    """The real registry; ``on_register`` runs after a version is registered (a user's
    cancel arriving at that moment, say)."""

    on_register: Callable[[], None] | None = None

    def register_version(self, name, **fields):
        version = super().register_version(name, **fields)
        if self.on_register is not None:
            self.on_register()
        return version


@dataclass
class World:
    """A registry with model ``clf`` (version 1 in production), and a supervisor over it."""

    settings: Settings
    registry: HookedRegistry
    store: ArtifactStore
    jobs: InstrumentedJobs
    clock: Clock = field(default_factory=Clock)
    calls: list[str] = field(default_factory=list)
    hooks: dict[str, Callable[[str], object]] = field(default_factory=dict)
    supervisor: JobSupervisor | None = None
    slot: Slot | None = None

    def create_job(self, training_uri: str | None = None) -> str:
        """A job on placeholder files, read by the phases the test replaces; or, with
        ``training_uri``, on that real file alone (the job splits it for validation)."""
        uris = [training_uri] if training_uri else ["file:///rows/train.arrow"]
        uris += [] if training_uri else ["file:///rows/validation.arrow"]
        files = [
            self.jobs.create_file(
                filename=f"{index}.jsonl",
                purpose="fine-tune",
                bytes=10,
                sha256="0" * 64,
                rows=10,
                task="classification",
                labels=["negative", "positive"],
                uri=uri,
            ).id
            for index, uri in enumerate(uris)
        ]
        return self.jobs.create_job(
            model=MODEL,
            base_version=1,
            task="classification",
            training_file=files[0],
            validation_file=files[1] if len(files) > 1 else None,
            hyperparameters=TrainingConfig().model_dump(),
            promotion=Promotion(auto=True).model_dump(),
            suffix=None,
        ).id

    def go(self, rounds: int = 12) -> list[float]:
        """Rounds of the worker until it has nothing to do (or ``rounds`` are done)."""
        pauses = []
        for _ in range(rounds):
            pauses.append(self.supervisor.go_round(self.slot))
            if pauses[-1] == self.settings.training.poll_interval_s:
                break
        return pauses

    def job(self, job_id: str) -> JobInfo:
        return self.jobs.get_job(job_id)

    def messages(self, job_id: str) -> list[str]:
        events, _ = self.jobs.list_events(job_id, None, 100)
        return [event.message for event in reversed(events)]

    def cancel_now(self, job_id: str) -> None:
        """What ``POST /v1/fine_tuning/jobs/{id}/cancel`` does."""
        self.jobs.request_cancel(job_id)

    # --- the phases that need a cluster, as the test plays them -------------------------
    def train(self, job: JobInfo, plan: Plan, ctx: JobContext) -> TrainOutcome | None:
        self.calls.append("train")
        if self.hooks.get("train") and self.hooks["train"](job.id) is STOP:
            return None
        # one epoch's checkpoint; a retry resumes the run, as Ray Train does, and finds it
        folder = Path(self.settings.training.checkpoint_url) / job.id / "checkpoint_1"
        if not folder.exists():
            shutil.copytree(self.store.local_path(plan.base_uri), folder)
            (folder / STATE_DIR).mkdir()
        metrics = {"epoch": 1, "step": 2, "trained_tokens": 40, "trained_examples": 8}
        return TrainOutcome(metrics, str(folder), [(str(folder), metrics)])

    def evaluate(self, job, plan, uris, ctx) -> dict | None:
        self.calls.append("evaluate")
        if self.hooks.get("evaluate") and self.hooks["evaluate"](job.id) is STOP:
            return None
        return {"candidate": {"accuracy": 0.9}, "production": {"accuracy": 0.5}}

    def promote(self, model: str, version: int, expected: int, reason: str) -> str:
        self.calls.append("promote")
        if self.hooks.get("promote"):
            self.hooks["promote"](reason.removeprefix("job "))
        self.registry.move_alias(model, "production", version, expected, reason)
        return "promoted on every replica"


def make_world(tmp_path: Path, database_url: str | None = None) -> World:
    settings = Settings(
        data_dir=tmp_path,
        registry={"database_url": database_url},
        training={
            "wait_for_resources": True,  # no resource check: there is no cluster here
            "max_job_attempts": 3,
            "retry_backoff_s": 5,
            "retry_backoff_max_s": 12,
        },
    )
    registry, store = connect(settings.registry)
    world = World(
        settings, HookedRegistry(registry.engine), store, InstrumentedJobs(registry.engine)
    )
    base = store.put_dir(model_folder(tmp_path / "base"), f"{MODEL}/1")
    world.registry.create_model(MODEL, "classification")
    world.registry.register_version(
        MODEL, artifact_uri=base, sha256=weights_sha256(store.local_path(base)), metrics={}
    )
    world.registry.move_alias(MODEL, "production", 1, None)
    context = JobContext(
        settings,
        world.registry,
        store,
        world.jobs,
        builtin_catalog(),
        world.promote,
        train=world.train,
        evaluate=world.evaluate,
    )
    world.supervisor = JobSupervisor(context, clock=world.clock)
    world.slot = world.supervisor.slots[0]
    return world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def raising(error: Exception) -> Callable[[str], None]:
    def hook(_: str) -> None:
        raise error

    return hook


@pytest.fixture
def runner_log() -> list[logging.LogRecord]:
    """The runner's log records (its logger does not propagate to pytest's)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("tuneserve.runner")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


# --- the loop ------------------------------------------------------------------------------
def test_backoff_doubles_from_its_start_up_to_its_cap(world):
    training = world.settings.training
    assert [backoff(training, n) for n in (1, 2, 3, 4, 500)] == [5, 10, 12, 12, 12]


def test_the_loop_survives_its_own_errors_backs_off_and_goes_on(world, runner_log):
    job_id = world.create_job()
    world.jobs.faults["next_job"] = 3  # the database is locked for three rounds
    pauses = [world.supervisor.go_round(world.slot) for _ in range(3)]
    assert pauses == [5, 10, 12] and world.slot.errors == 3
    logged = [r for r in runner_log if r.exc_info is not None]
    assert len(logged) == 3 and "database is locked" in str(logged[0].exc_info[1])
    world.go()
    assert world.slot.errors == 0
    assert world.job(job_id).status == "succeeded"


def test_the_heartbeat_shows_a_loop_that_stopped_going_round(world):
    assert world.supervisor.heartbeat_age() == 0
    world.clock.now += 40  # the loop is stuck somewhere
    assert world.supervisor.heartbeat_age() == 40
    ages_while_training = []

    def long_training(job_id: str) -> None:
        world.clock.now += 100
        ages_while_training.append(world.supervisor.heartbeat_age())
        world.supervisor.context.heartbeat()  # what train() does on every poll
        ages_while_training.append(world.supervisor.heartbeat_age())

    world.hooks["train"] = long_training
    world.create_job()
    world.go()
    assert ages_while_training == [100, 0]
    assert world.supervisor.heartbeat_age() == 0


def test_a_job_whose_end_could_not_be_recorded_is_settled_next_round(world):
    """The database fails just as a crashed job's retry is recorded: the worker keeps the
    job, backs off, and settles it on its next round; the job never stays running."""
    job_id = world.create_job()
    world.hooks["train"] = raising(RuntimeError("worker lost"))
    world.supervisor.go_round(world.slot)  # validated: queued
    world.jobs.faults["transition:queued"] = 1
    world.supervisor.go_round(world.slot)  # the run crashes, and so does recording that
    assert world.slot.errors == 1 and world.slot.job_id == job_id
    assert world.job(job_id).status == "running"
    world.supervisor.go_round(world.slot)
    assert world.slot.job_id is None
    assert world.job(job_id).status == "queued"  # to be retried: attempt 1 of 3


def test_worker_threads_keep_going_after_errors(world):
    """The real threads: a locked database at first, then a job goes through."""
    world.supervisor.clock = time.monotonic
    world.settings.training.retry_backoff_s = 0.01
    world.jobs.faults["next_job"] = 2
    job_id = world.create_job()
    world.supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while world.job(job_id).status != "succeeded":
            assert time.monotonic() < deadline, world.messages(job_id)
            world.supervisor.wake()
            time.sleep(0.05)  # polling the job's status, as a client does
    finally:
        world.supervisor.stop()
    assert world.jobs.faults["next_job"] == 0


# --- internal errors and the job's own --------------------------------------------------------
def test_an_internal_error_is_retried_with_backoff_then_fails_cleanly(tmp_path, db_url, runner_log):
    """On SQLite and on Postgres: the attempts are counted by the database's own update."""
    world = make_world(tmp_path, db_url)
    secret = f"could not reach {SECRET_URL} from /var/lib/tuneserve/registry.db"
    world.hooks["train"] = raising(RuntimeError(secret))
    job_id = world.create_job()
    world.go()
    job = world.job(job_id)
    assert job.status == "queued" and job.attempts == 1
    assert world.go() == [world.settings.training.poll_interval_s]  # not before its backoff
    for attempt in (2, 3):
        world.clock.now += 12
        world.go()
        assert world.job(job_id).attempts == attempt
        assert world.calls.count("train") == attempt
    job = world.job(job_id)
    assert job.status == "failed" and job.error["code"] == "internal_error"
    for text in [job.error["message"], *world.messages(job_id)]:
        assert "s3cret" not in text and "/var/lib" not in text and "RuntimeError" not in text
    reference = job.error["message"].split("reference ")[1].split(")")[0]
    assert reference.startswith("err-")
    logged = [r for r in runner_log if reference in r.getMessage()]
    assert logged and secret in str(logged[0].exc_info[1]) and logged[0].job_id == job_id
    assert any("the job runs again in 10 s" in m for m in world.messages(job_id))


def test_a_retry_that_works_finishes_the_job(world):
    failures = [RuntimeError("connection reset")]

    def flaky(_: str) -> None:
        if failures:
            raise failures.pop()

    world.hooks["train"] = flaky
    job_id = world.create_job()
    world.go()
    world.clock.now += 5
    world.go()
    job = world.job(job_id)
    assert job.status == "succeeded" and job.attempts == 2 and job.error is None
    assert job.fine_tuned_model == f"{MODEL}@2"


def test_a_retry_of_a_job_without_a_validation_file_splits_its_rows_again(world, tmp_path):
    """The split rows are stored per attempt: a second attempt writes its own, where it
    once met the first attempt's key and failed with a conflict."""
    rows = tmp_path / "rows.arrow"
    with ArrowRowWriter(rows) as write:
        write(
            [{"text": f"review {i}", "label": ("negative", "positive")[i % 2]} for i in range(20)]
        )
    job_id = world.create_job(training_uri=world.store.put_file(rows, "files/rows.arrow"))
    failures = [RuntimeError("connection reset")]

    def flaky(_: str) -> None:
        if failures:
            raise failures.pop()

    world.hooks["train"] = flaky
    world.go()
    world.clock.now += 5
    world.go()
    job = world.job(job_id)
    assert job.status == "succeeded" and job.attempts == 2, job.error


def test_a_retry_after_training_resumes_and_records_each_checkpoint_once(world):
    failures = [OperationalError("SELECT ...", {}, Exception("server closed the connection"))]

    def flaky(_: str) -> None:
        if failures:
            raise failures.pop()

    world.hooks["evaluate"] = flaky
    job_id = world.create_job()
    world.go()
    assert world.job(job_id).status == "queued"  # after training and recording it
    world.clock.now += 5
    world.go()
    assert world.job(job_id).status == "succeeded"
    assert world.calls == ["train", "evaluate", "train", "evaluate", "promote"]
    assert len(world.jobs.list_checkpoints(job_id)) == 1


@pytest.mark.parametrize(
    ("failure", "code", "param"),
    [
        (
            JobFailure(
                "resource_unavailable", "4 GPUs asked for, none here", "hyperparameters.use_gpu"
            ),
            "resource_unavailable",
            "hyperparameters.use_gpu",
        ),
        (
            InvalidRequest("metric 'f2' is not reported", param="promotion.metric"),
            "invalid_request_error",
            "promotion.metric",
        ),
    ],
)
def test_a_jobs_own_failure_is_not_retried(world, failure, code, param):
    world.hooks["train"] = raising(failure)
    job_id = world.create_job()
    world.go()
    job = world.job(job_id)
    assert job.status == "failed" and job.attempts == 1 and world.calls == ["train"]
    assert job.error == {"code": code, "message": failure.message, "param": param}


def test_a_corrupt_base_model_config_fails_validation_cleanly_after_retries(
    world, tmp_path, runner_log
):
    """Not the user's fault, so retried; the loop lives on, and the job does not wait in
    validating_files for ever."""
    broken = world.store.put_dir(model_folder(tmp_path / "broken", "{not json"), f"{MODEL}/2")
    world.registry.register_version(MODEL, artifact_uri=broken, sha256="1" * 64, metrics={})
    job_id = world.create_job()
    world.jobs.update_job(job_id, base_version=2)
    world.go()
    assert world.job(job_id).status == "validating_files" and world.slot.errors == 0
    world.clock.now += 5
    world.go()
    world.clock.now += 10
    world.go()
    job = world.job(job_id)
    assert job.status == "failed" and job.error["code"] == "internal_error"
    assert str(tmp_path) not in job.error["message"] and "reference err-" in job.error["message"]
    assert world.calls == []  # never trained
    assert sum("reference" in m and "trying again" in m for m in world.messages(job_id)) == 2


# --- cancel in every state up to the promotion ------------------------------------------------
def _cancelling(world: World, answer: object = None) -> Callable[[str], object]:
    """A phase hook: the user cancels while the phase runs; the phase then answers."""

    def hook(job_id: str) -> object:
        world.cancel_now(job_id)
        return answer

    return hook


@pytest.mark.parametrize(
    ("when", "ran", "registered"),
    [
        ("validating_files", [], False),
        ("queued", [], False),
        ("running, before training", [], False),
        ("running, training stops at the cancel", ["train"], False),
        ("running, training ended as the cancel came", ["train"], False),
        ("evaluating, evaluation stops at the cancel", ["train", "evaluate"], False),
        ("evaluating, evaluation ended as the cancel came", ["train", "evaluate"], False),
        ("evaluating, while the version is registered", ["train", "evaluate"], True),
    ],
)
def test_a_cancel_is_honoured_in_every_state_before_the_promotion(world, when, ran, registered):
    job_id = world.create_job()
    cancel = lambda: world.cancel_now(job_id)  # noqa: E731 - the user's request, at a moment
    if when == "validating_files":  # while the files are checked
        world.jobs.after["get_file"] = cancel
    elif when == "queued":
        world.supervisor.go_round(world.slot)  # validated: queued
        assert world.job(job_id).status == "queued"
        cancel()
    elif when == "running, before training":  # just after a worker took it
        world.jobs.after["start_job"] = cancel
    elif when.startswith("running, training stops"):
        world.hooks["train"] = _cancelling(world, STOP)
    elif when.startswith("running, training ended"):
        world.hooks["train"] = _cancelling(world)
    elif when.startswith("evaluating, evaluation stops"):
        world.hooks["evaluate"] = _cancelling(world, STOP)
    elif when.startswith("evaluating, evaluation ended"):
        world.hooks["evaluate"] = _cancelling(world)
    else:
        world.registry.on_register = cancel
    world.go()
    job = world.job(job_id)
    assert job.status == "cancelled", world.messages(job_id)
    assert world.calls == ran
    versions = [v.version for v in world.registry.list_versions(MODEL)]
    assert versions == ([1, 2] if registered else [1])
    assert world.registry.aliases(MODEL)["production"] == 1
    messages = world.messages(job_id)
    assert not any(m.startswith(("failed", "promoted")) for m in messages), messages
    assert job.error is None


def test_a_cancel_during_the_promotion_comes_too_late_and_the_job_succeeds(world):
    job_id = world.create_job()
    world.hooks["promote"] = world.cancel_now
    world.go()
    job = world.job(job_id)
    assert job.status == "succeeded" and job.result["promoted"] is True
    assert world.registry.aliases(MODEL)["production"] == 2
    assert "the cancel came after the promotion: the job succeeds" in world.messages(job_id)


# --- what Ray Train's controller reads from the environment -------------------------------------
def test_the_controller_gets_the_start_timeout_and_poll_interval_from_settings(world):
    from ray.train.v2._internal.constants import ENV_VARS_TO_PROPAGATE

    settings = world.settings.updated(training={"start_timeout_s": 42, "controller_poll_s": 0.25})
    environment = controller_environment(settings)
    assert environment == {
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "42.0",
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    }
    # set in the process that calls fit, Ray Train passes them on to its controller
    assert set(environment) <= ENV_VARS_TO_PROPAGATE


# --- no database in the training workers' config ------------------------------------------------
def test_train_loop_config_holds_no_database_url_or_credentials(world, tmp_path):
    settings = world.settings.updated(registry={"database_url": SECRET_URL})
    job = world.jobs.get_job(world.create_job())
    uris = ("file:///base", "0" * 64, "file:///t.arrow", "file:///v.arrow")
    plan = Plan(TrainingConfig(), *uris, [])
    reporter = RunnerAddress("tuneserve")  # a name, not a handle
    config = _trainer(job, plan, settings, reporter).train_loop_config
    shown = json.dumps(config, default=repr)  # about what Ray Train's dashboard shows
    assert "s3cret-pw" not in shown and "postgresql" not in shown
    assert "database_url" not in shown and "registry" not in config
    assert config["reporter"] == reporter
    assert config["artifacts"]["url"] == settings.registry.artifact_url
