"""Start-up reconciliation and storage collection, on a registry state built by hand.

No Ray: a real registry (SQLite and Postgres) and a real artifact store (a local folder, and
S3 through moto), with jobs in every state, checkpoints, versions, aliases and orphans laid
out as the pipeline and Ray Train leave them. Each test says exactly what stays and what goes.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from tuneserve.cli import app as cli
from tuneserve.registry import ArtifactStore, Registry, connect
from tuneserve.registry.jobs import JobStore
from tuneserve.settings import Settings
from tuneserve.training.reconcile import Sweeper, reconcile
from tuneserve.training.retention import collect
from typer.testing import CliRunner


@dataclass
class World:
    settings: Settings
    registry: Registry
    store: ArtifactStore
    jobs: JobStore
    job: dict[str, str] = field(default_factory=dict)  # story name → job id
    uri: dict[str, str] = field(default_factory=dict)  # story name → artifact URI

    @property
    def root(self) -> Path:
        return Path(self.settings.registry.artifact_url)

    def files(self) -> set[str]:
        """Every file in the local store, relative to its root."""
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}

    def later(self) -> float:
        """A clock past every grace period."""
        return time.time() + 2 * self.settings.training.gc_grace_s

    def new_job(self, name: str, status: str, base_version: int = 1, **fields) -> str:
        job = self.jobs.create_job(
            model="sentiment",
            base_version=base_version,
            task="classification",
            training_file="file-x",
            validation_file=None,
            hyperparameters={},
            promotion={},
            suffix=None,
        )
        self.jobs.update_job(job.id, status=status, **fields)
        self.job[name] = job.id
        return job.id

    def folder(self, relative: str, source: Path) -> str:
        """A model folder written in place, as Ray Train writes a checkpoint."""
        shutil.copytree(source, self.root / relative)
        return str(self.root / relative)

    def file(self, relative: str, text: str = "x") -> None:
        (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.root / relative).write_text(text)

    def version(self, uri: str, **lineage) -> int:
        sha256 = hashlib.sha256(uri.encode()).hexdigest()
        registered = self.registry.register_version(
            "sentiment", artifact_uri=uri, sha256=sha256, metrics={"accuracy": 0.9}, lineage=lineage
        )
        return registered.version


def _settings(db_url: str, data_dir: Path, **training) -> Settings:
    return Settings(
        data_dir=data_dir,
        registry={"database_url": db_url},
        training={"gc_interval_s": 0} | training,
    )


@pytest.fixture
def world(db_url: str, tmp_path: Path, model_dir: Path) -> World:
    """One model, seven versions and five jobs, as a service that stopped mid-job leaves them.

    versions: 1 production · 2 candidate, job "done"'s last checkpoint · 3 base of the queued
    job · 4 production before (rolled back from) · 5 registered by job "after" before the stop ·
    6 nothing needs it · 7 shares version 1's weights, nothing needs it · 8 alias "canary".
    """
    settings = _settings(db_url, tmp_path / "data")
    registry, store = connect(settings.registry)
    w = World(settings, registry, store, JobStore(registry.engine))
    registry.create_model("sentiment", "classification")
    for name in ("v1", "v3", "v4", "v6", "v8"):
        w.uri[name] = store.put_dir(model_dir, f"sentiment/{name}")

    done = w.new_job("done", "succeeded")
    after = w.new_job("after", "evaluating")
    before = w.new_job("before", "running")
    w.new_job("cancelled", "cancelled")
    for job_id, epochs in ((done, 3), (after, 2)):
        for epoch in range(1, epochs + 1):
            uri = w.folder(f"checkpoints/{job_id}/checkpoint_{epoch}", model_dir)
            w.jobs.add_checkpoint(job_id, epoch, epoch * 10, uri, {"epoch": epoch})
            w.uri[f"{job_id}/{epoch}"] = uri
    for job_id in (done, after, before, w.job["cancelled"]):
        w.file(f"checkpoints/{job_id}/.validate_storage_marker")  # Ray Train's run files
        w.file(f"jobs/{job_id}/train.arrow")  # the job's split rows
    w.folder(f"checkpoints/{before}/checkpoint_1", model_dir)
    w.folder(f"checkpoints/{w.job['cancelled']}/checkpoint_1", model_dir)

    assert w.version(w.uri["v1"]) == 1
    assert w.version(w.uri[f"{done}/3"], job=done) == 2
    assert w.version(w.uri["v3"]) == 3
    assert w.version(w.uri["v4"]) == 4
    assert w.version(w.uri[f"{after}/2"], job=after) == 5
    assert w.version(w.uri["v6"]) == 6
    assert w.version(w.uri["v1"]) == 7
    assert w.version(w.uri["v8"]) == 8
    registry.move_alias("sentiment", "canary", 8, None)
    registry.move_alias("sentiment", "production", 1, None)
    registry.move_alias("sentiment", "production", 4, 1)
    registry.move_alias("sentiment", "production", 1, 4, reason="rollback")
    registry.move_alias("sentiment", "candidate", 2, None)
    w.jobs.update_job(done, result={"candidate_version": 2, "production_version": 1})
    queued = w.new_job("queued", "queued", base_version=3)
    w.file(f"jobs/{queued}/train.arrow")

    w.uri["upload"] = store.put_file(model_dir / "config.json", "files/aa/upload.arrow")
    w.jobs.create_file(
        filename="t.jsonl",
        purpose="fine-tune",
        bytes=10,
        sha256="0" * 64,
        rows=1,
        task="classification",
        labels=[],
        uri=w.uri["upload"],
    )
    # orphans: no record names them, and they are young
    w.file("files/bb/lost.arrow")  # an upload whose row was never written
    w.file("files/aa/.0123.partial")  # a put_file that died half-way
    w.folder("sentiment/stale", model_dir)  # weights whose version was never registered
    w.folder("sentiment/.v9.tmp-0123", model_dir)  # a put_dir that died half-way
    w.folder("checkpoints/ftjob-ghost/checkpoint_1", model_dir)  # a run no job owns
    # not tuneserve's: never looked at
    w.file("elsewhere/notes.txt")
    w.file("checkpoints/not-a-job/notes.txt")
    return w


def _model_files(prefix: str) -> set[str]:
    return {
        f"{prefix}/{name}" for name in ("model.safetensors", "config.json", "tokenizer/vocab.txt")
    }


def test_reconcile_finishes_jobs_and_removes_what_finished_jobs_left(world: World):
    w, done, after, before = world, world.job["done"], world.job["after"], world.job["before"]
    everything = w.files()

    settled = reconcile(w.settings, w.registry, w.store, w.jobs)

    assert settled.recovered == [after] and settled.failed == [before]
    recovered = w.jobs.get_job(after)
    assert recovered.status == "succeeded" and recovered.fine_tuned_model == "sentiment@5"
    assert recovered.result["recovered"] is True and recovered.result["promoted"] is False
    assert recovered.result["candidate_version"] == 5
    assert w.registry.aliases("sentiment") == {"production": 1, "candidate": 5, "canary": 8}
    failed = w.jobs.get_job(before)
    assert failed.status == "failed" and failed.error["code"] == "interrupted"
    assert "stopped while this job was running" in failed.error["message"]
    assert w.jobs.get_job(w.job["queued"]).status == "queued"

    # the oldest of "done"'s three checkpoints goes (keep 2), row and files; finished jobs'
    # run files, split rows and unrecorded checkpoints go at once; young orphans stay
    assert [c.epoch for c in w.jobs.list_checkpoints(done)] == [3, 2]
    assert [c.epoch for c in w.jobs.list_checkpoints(after)] == [2, 1]
    gone = _model_files(f"checkpoints/{done}/checkpoint_1") | {
        f"{folder}/{job_id}/{name}"
        for job_id in (done, after, before, w.job["cancelled"])
        for folder, name in (("checkpoints", ".validate_storage_marker"), ("jobs", "train.arrow"))
    }
    gone |= _model_files(f"checkpoints/{before}/checkpoint_1")
    gone |= _model_files(f"checkpoints/{w.job['cancelled']}/checkpoint_1")
    assert w.files() == everything - gone
    assert {r.kind for r in settled.collection.removals} == {"checkpoint", "orphan"}
    assert settled.collection.errors == []


def test_reconcile_twice_changes_nothing_the_second_time(world: World):
    w = world
    reconcile(w.settings, w.registry, w.store, w.jobs)
    files, jobs = w.files(), w.jobs.jobs_in()
    events = {job.id: w.jobs.list_events(job.id, None, 100)[0] for job in jobs}

    again = reconcile(w.settings, w.registry, w.store, w.jobs)

    assert again.recovered == [] and again.failed == [] and again.collection.removals == []
    assert w.files() == files and w.jobs.jobs_in() == jobs
    assert {job.id: w.jobs.list_events(job.id, None, 100)[0] for job in jobs} == events


def test_gc_dry_run_lists_old_orphans_and_deletes_nothing_then_gc_deletes_them(world: World):
    w = world
    reconcile(w.settings, w.registry, w.store, w.jobs)
    files = w.files()

    planned = collect(w.settings, w.registry, w.jobs, w.store, dry_run=True, now=w.later())

    assert w.files() == files
    expected = {
        f"{w.root}/{path}"
        for path in (
            "files/bb",  # the largest folder holding nothing named
            "files/aa/.0123.partial",
            "sentiment/stale",
            "sentiment/.v9.tmp-0123",
            "checkpoints/ftjob-ghost",
        )
    }
    assert {r.uri for r in planned.removals} == expected
    assert {r.kind for r in planned.removals} == {"orphan"} and planned.bytes > 0

    done = collect(w.settings, w.registry, w.jobs, w.store, now=w.later())

    assert done.removals == planned.removals and done.errors == []
    assert all(not Path(uri).exists() for uri in expected)
    assert {"elsewhere/notes.txt", "checkpoints/not-a-job/notes.txt"} <= w.files()
    again = collect(w.settings, w.registry, w.jobs, w.store, now=w.later())
    assert again.removals == []


def test_version_weights_go_only_when_nothing_needs_them(world: World):
    """With weight collection on and no checkpoint kept beyond the versions' own: only
    version 6's weights go. Each other version has one reason to stay (an alias, once
    production, named by a result, base of a queued job, weights shared with version 1);
    every version row stays."""
    w = world
    reconcile(w.settings, w.registry, w.store, w.jobs)
    settings = w.settings.updated(training={"gc_version_weights": True, "keep_checkpoints": 0})
    rows = w.registry.list_versions("sentiment")

    done = collect(settings, w.registry, w.jobs, w.store, now=w.later())

    weights = {r.uri for r in done.removals if r.kind == "weights"}
    assert weights == {w.uri["v6"]}
    assert not Path(w.uri["v6"]).exists()
    for version in rows:
        assert w.store.exists(version.artifact_uri) == (version.version != 6), version.version
    assert [v.version for v in w.registry.list_versions("sentiment")] == list(range(1, 9))
    assert w.registry.get_version("sentiment", 6).metrics == {"accuracy": 0.9}
    # keep 0: every checkpoint but the ones that are versions' weights
    assert [c.epoch for c in w.jobs.list_checkpoints(w.job["done"])] == [3]
    assert [c.epoch for c in w.jobs.list_checkpoints(w.job["after"])] == [2]
    assert collect(settings, w.registry, w.jobs, w.store, now=w.later()).removals == []


def test_the_weights_a_kept_lora_version_runs_on_stay(world: World, model_dir: Path):
    """Version 6 (nothing needs it) becomes the base of a LoRA version an alias names."""
    w = world
    reconcile(w.settings, w.registry, w.store, w.jobs)
    v6 = w.registry.get_version("sentiment", 6)
    adapter = {"model": "sentiment", "version": 6, "artifact_uri": v6.artifact_uri}
    lora = w.version(
        w.store.put_dir(model_dir, "sentiment/lora"), adapter=adapter | {"sha256": v6.sha256}
    )
    w.registry.move_alias("sentiment", "lora", lora, None)
    settings = w.settings.updated(training={"gc_version_weights": True, "keep_checkpoints": 0})
    done = collect(settings, w.registry, w.jobs, w.store, now=w.later())
    assert not [r for r in done.removals if r.kind == "weights"]
    assert w.store.exists(v6.artifact_uri)


def test_a_recovered_job_counts_as_promoted_only_if_production_points_at_it(
    db_url: str, tmp_path: Path, model_dir: Path
):
    settings = _settings(db_url, tmp_path / "data")
    registry, store = connect(settings.registry)
    w = World(settings, registry, store, JobStore(registry.engine))
    registry.create_model("sentiment", "classification")
    w.version(store.put_dir(model_dir, "sentiment/v1"))
    registry.move_alias("sentiment", "production", 1, None)
    older = w.new_job("older", "evaluating", promotion={"metric": "accuracy"})
    newer = w.new_job("newer", "evaluating")
    # the newer job registered first (version 2); the older one then registered version 3
    # and was promoted when the service stopped
    assert w.version(store.put_dir(model_dir, "sentiment/v2"), job=newer) == 2
    assert w.version(store.put_dir(model_dir, "sentiment/v3"), job=older) == 3
    registry.move_alias("sentiment", "production", 3, 1)
    scores = {"candidate": {"accuracy": 0.9}, "production": {"accuracy": 0.7}}
    w.jobs.add_event(older, "evaluated: accuracy 0.900 vs 0.700", data=scores)

    settled = reconcile(settings, registry, store, w.jobs)

    assert settled.recovered == [older, newer] and settled.failed == []
    first, second = w.jobs.get_job(older), w.jobs.get_job(newer)
    assert first.result == {
        "promoted": True,
        "reason": first.result["reason"],
        "recovered": True,
        "metric": "accuracy",
        "candidate_version": 3,
        "production_version": 3,
        "candidate_metrics": {"accuracy": 0.9},
        "production_metrics": {"accuracy": 0.7},
    }
    assert "it is production" in first.result["reason"]
    assert second.result["promoted"] is False and second.result["candidate_version"] == 2
    assert "not promoted" in second.result["reason"]
    assert second.result["production_metrics"] is None  # no evaluation event to read
    # candidate went to 3 and was not moved back to the older number 2
    assert registry.aliases("sentiment") == {"production": 3, "candidate": 3}
    messages = [e.message for e in w.jobs.list_events(older, None, 10)[0]]
    assert messages[0] == "status: succeeded" and messages[1].startswith("recovered after")


def test_the_periodic_sweep_collects_and_zero_turns_it_off(
    db_url: str, tmp_path: Path, model_dir: Path
):
    settings = _settings(db_url, tmp_path / "data", gc_interval_s=0.05, gc_grace_s=0)
    registry, store = connect(settings.registry)
    w = World(settings, registry, store, JobStore(registry.engine))
    w.file("files/cc/lost.arrow")

    sweeper = Sweeper(settings, registry, store, w.jobs).start()
    try:
        assert sweeper.swept.wait(timeout=60)
    finally:
        sweeper.stop()
    assert "files/cc/lost.arrow" not in w.files()
    assert [r.kind for r in sweeper.last.removals] == ["orphan"]
    off = Sweeper(settings.updated(training={"gc_interval_s": 0}), registry, store, w.jobs)
    assert off.start().interval_s == 0 and off.thread is None


def test_tuneserve_gc_dry_run_prints_and_keeps_then_deletes(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    w = world
    for name, value in {
        "TUNESERVE_DATA_DIR": str(w.settings.data_dir),
        "TUNESERVE_REGISTRY__DATABASE_URL": w.settings.registry.database_url,
        "TUNESERVE_TRAINING__GC_GRACE_S": "0",
    }.items():
        monkeypatch.setenv(name, value)
    files = w.files()

    dry = CliRunner().invoke(cli, ["gc", "--dry-run"])

    assert dry.exit_code == 0, dry.output
    assert "would be deleted" in dry.output and "would free" in dry.output
    assert w.files() == files
    real = CliRunner().invoke(cli, ["gc"])
    assert real.exit_code == 0, real.output
    left = w.files()
    assert "sentiment/stale/model.safetensors" not in left
    assert f"checkpoints/{w.job['cancelled']}/.validate_storage_marker" not in left
    # gc never settles jobs: those still marked in flight keep every file they have
    for job_id in (w.job["after"], w.job["before"]):
        assert f"checkpoints/{job_id}/checkpoint_1/model.safetensors" in left
        assert f"jobs/{job_id}/train.arrow" in left
    assert w.store.exists(w.uri["v1"]) and w.store.exists(w.uri["v6"])
    assert "0 item(s)" in CliRunner().invoke(cli, ["gc"]).output


# --- S3 ----------------------------------------------------------------------------------


def _objects(s3_server: dict, uri: str) -> set[str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=s3_server["endpoint"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return {item["Key"][len(prefix) + 1 :] for page in pages for item in page.get("Contents", [])}


def test_collection_on_s3(s3_server: dict, tmp_path: Path, model_dir: Path):
    root = f"s3://{s3_server['bucket']}/{uuid.uuid4().hex}"
    settings = Settings(
        data_dir=tmp_path / "data",
        registry={"artifact_url": root},
        training={"gc_interval_s": 0, "keep_checkpoints": 1},
    )
    registry, store = connect(settings.registry)
    w = World(settings, registry, store, JobStore(registry.engine))
    registry.create_model("sentiment", "classification")
    w.version(store.put_dir(model_dir, "sentiment/v1"))
    registry.move_alias("sentiment", "production", 1, None)
    job_id = w.new_job("done", "succeeded", result={"candidate_version": 2})
    for epoch in (1, 2):
        uri = store.put_dir(model_dir, f"checkpoints/{job_id}/checkpoint_{epoch}")
        w.jobs.add_checkpoint(job_id, epoch, epoch, uri, {"epoch": epoch})
    w.version(uri, job=job_id)
    store.put_dir(model_dir, "sentiment/stale")
    store.put_dir(model_dir, f"jobs/{job_id}")
    before = _objects(s3_server, root)

    planned = collect(settings, registry, w.jobs, store, dry_run=True, now=w.later())
    assert _objects(s3_server, root) == before
    done = collect(settings, registry, w.jobs, store, now=w.later())

    assert done.removals == planned.removals and done.errors == []
    assert {r.uri.removeprefix(root + "/") for r in done.removals} == {
        f"checkpoints/{job_id}/checkpoint_1",
        f"jobs/{job_id}",
        "sentiment/stale",
    }
    assert {key.split("/")[0] + "/" + key.split("/")[1] for key in _objects(s3_server, root)} == {
        "sentiment/v1",
        f"checkpoints/{job_id}",
    }
    assert {key.split("/")[2] for key in _objects(s3_server, root) if key.startswith("check")} == {
        "checkpoint_2"
    }
    assert collect(settings, registry, w.jobs, store, now=w.later()).removals == []
