"""Bounded storage: what the registry still needs, and the removal of everything else.

A collection (``collect``) runs when the job runner starts, every ``training.gc_interval_s``
in it, and on demand (``tuneserve gc``). It removes three kinds of thing, nothing else:

- **old checkpoints** of finished jobs: all but the newest ``training.keep_checkpoints``,
  the row first and then the files, so no row ever names missing files. The checkpoint that
  became a version's weights belongs to the version and stays.
- **version weights**, only with ``training.gc_version_weights`` (off by default), of
  versions no alias points at, that were never production (a rollback may name any of
  those), that no job's result names and no unfinished job builds on. The version's row,
  metrics and lineage stay: versions are immutable records, only their files go.
- **orphans** (``orphans.find``): whatever in the store's own folders no record names.

Nothing an unfinished job reads or writes is touched. The registry is read jobs first: what a
job registers while a collection runs belongs to a job seen unfinished, whose files all stay.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from tuneserve.registry import ArtifactStore, Registry, VersionInfo
from tuneserve.registry.jobs import TERMINAL, JobStore
from tuneserve.registry.records import CheckpointInfo, FileInfo, JobInfo
from tuneserve.registry.refs import PRODUCTION
from tuneserve.settings import Settings
from tuneserve.training import orphans
from tuneserve.training.orphans import key

logger = logging.getLogger("tuneserve.retention")
# The job-result fields that name versions of the job's model (see pipeline.run).
RESULT_VERSIONS = ("candidate_version", "production_version")


@dataclass(frozen=True)
class Removal:
    kind: str  # "checkpoint" | "weights" | "orphan"
    uri: str
    why: str
    bytes: int = 0
    checkpoint_id: str | None = None  # a checkpoint's row, removed with its files


@dataclass(frozen=True)
class Collection:
    removals: list[Removal]
    dry_run: bool
    errors: list[str] = field(default_factory=list)  # removals that failed; retried next time

    @property
    def bytes(self) -> int:
        return sum(removal.bytes for removal in self.removals)


@dataclass(frozen=True)
class _State:
    """The registry as one collection sees it."""

    jobs: list[JobInfo]
    checkpoints: list[CheckpointInfo]
    models: list[str]
    versions: list[VersionInfo]
    files: list[FileInfo]
    ever_production: frozenset[tuple[str, int]]

    @classmethod
    def read(cls, registry: Registry, jobs: JobStore) -> _State:
        every_job = jobs.jobs_in()  # first: see the module's note
        checkpoints = jobs.all_checkpoints()
        models = [model.name for model in registry.list_models()]
        versions = [version for name in models for version in registry.list_versions(name)]
        production = frozenset(
            (name, number)
            for name in models
            for move in registry.alias_history(name, PRODUCTION)
            for number in (move.from_version, move.to_version)
            if number is not None
        )
        return cls(every_job, checkpoints, models, versions, jobs.list_files(), production)

    def unfinished(self) -> set[str]:
        return {job.id for job in self.jobs if job.status not in TERMINAL}

    def needed_versions(self) -> set[tuple[str, int]]:
        """The versions whose weights stay, whatever the settings say."""
        unfinished = self.unfinished()
        needed = set(self.ever_production)
        needed |= {
            (v.model, v.version)
            for v in self.versions
            if v.aliases or v.lineage.get("job") in unfinished
        }
        for job in self.jobs:
            result = job.result or {}
            needed |= {
                (job.output_model, result[name])
                for name in RESULT_VERSIONS
                if isinstance(result.get(name), int)
            }
            if job.id in unfinished:
                needed.add((job.model, job.base_version))
        return needed


def collect(
    settings: Settings,
    registry: Registry,
    jobs: JobStore,
    store: ArtifactStore,
    *,
    dry_run: bool = False,
    now: float | None = None,
) -> Collection:
    """Find what no record needs any more and, unless ``dry_run``, delete it."""
    now = time.time() if now is None else now
    training = settings.training
    state = _State.read(registry, jobs)
    planned = _old_checkpoints(state, training.keep_checkpoints)
    if training.gc_version_weights:
        planned += _spare_weights(state, training.gc_grace_s, now)
    sized = [found for removal in planned if (found := _sized(removal, store)) is not None]
    marks = _marks(settings, state, planned)
    orphaned = orphans.find(store, _areas(settings, state), marks, training.gc_grace_s, now)
    removals = sized + [Removal("orphan", o.uri, o.why, o.bytes) for o in orphaned]
    errors = [] if dry_run else _delete(removals, store, jobs)
    return Collection(removals, dry_run, errors)


def _old_checkpoints(state: _State, keep: int) -> list[Removal]:
    """All but the newest ``keep`` checkpoints of each finished job, but never a version's."""
    finished = {job.id for job in state.jobs if job.status in TERMINAL}
    weights = {key(version.artifact_uri) for version in state.versions}
    by_job: dict[str, list[CheckpointInfo]] = defaultdict(list)
    for checkpoint in state.checkpoints:
        if checkpoint.job_id in finished:
            by_job[checkpoint.job_id].append(checkpoint)
    removals = []
    for job_id, found in by_job.items():
        newest_first = sorted(found, key=lambda c: (c.step, _seq(c)), reverse=True)
        for checkpoint in newest_first[keep:]:
            if key(checkpoint.uri) in weights:
                continue
            why = f"checkpoint {checkpoint.id} of {job_id}: older than its newest {keep}"
            removals.append(Removal("checkpoint", checkpoint.uri, why, 0, checkpoint.id))
    return removals


def _seq(checkpoint: CheckpointInfo) -> int:
    return int(checkpoint.id.removeprefix("ftckpt-"))


def _spare_weights(state: _State, grace_s: float, now: float) -> list[Removal]:
    """The weights of versions nothing needs, older than the grace period, named by no
    other version (versions may share weights; a kept LoRA version needs its base's),
    checkpoint or file."""
    needed = state.needed_versions()
    spare = [
        version
        for version in state.versions
        if (version.model, version.version) not in needed
        and now - version.created_at.timestamp() >= grace_s
    ]
    spare_ids = {(version.model, version.version) for version in spare}
    kept = [v for v in state.versions if (v.model, v.version) not in spare_ids]
    named = {key(v.artifact_uri) for v in kept}
    named |= {key(v.weights_base[0]) for v in kept if v.weights_base}  # what LoRA runs on
    named |= {key(c.uri) for c in state.checkpoints} | {key(f.uri) for f in state.files}
    removals: dict[str, Removal] = {}
    for version in spare:
        path = key(version.artifact_uri)
        if path not in named and path not in removals:
            why = f"weights of {version.model}@{version.version}, which nothing needs"
            removals[path] = Removal("weights", version.artifact_uri, why)
    return list(removals.values())


def _sized(removal: Removal, store: ArtifactStore) -> Removal | None:
    """The removal with the bytes it frees; None for weights already gone (a checkpoint's
    row still goes when its files are missing)."""
    footprint = store.footprint(removal.uri)
    if footprint is None:
        return removal if removal.checkpoint_id else None
    return Removal(removal.kind, removal.uri, removal.why, footprint.bytes, removal.checkpoint_id)


def _job_folders(settings: Settings, job_ids: set[str]) -> list[str]:
    """Where each job writes: its Ray Train run and its split rows (``jobs/<id>/``, see
    ``pipeline._plan``)."""
    root = settings.registry.artifact_url.rstrip("/")
    checkpoints = settings.training.checkpoint_url.rstrip("/")
    return [f"{base}/{job_id}" for job_id in job_ids for base in (checkpoints, f"{root}/jobs")]


def _marks(settings: Settings, state: _State, planned: list[Removal]) -> orphans.Marks:
    planned_uris = {removal.uri for removal in planned}
    named = [version.artifact_uri for version in state.versions]
    named += [c.uri for c in state.checkpoints if c.uri not in planned_uris]
    named += [file.uri for file in state.files]
    finished = {job.id for job in state.jobs if job.status in TERMINAL}
    return orphans.Marks.of(
        keep=named + _job_folders(settings, state.unfinished()),
        skip=planned_uris,
        prompt=_job_folders(settings, finished),
    )


def _areas(settings: Settings, state: _State) -> list[orphans.Area]:
    """The store's folders that tuneserve writes, each once."""
    root = settings.registry.artifact_url.rstrip("/")
    checkpoints = settings.training.checkpoint_url.rstrip("/")
    areas = {key(f"{root}/{name}"): orphans.Area(f"{root}/{name}") for name in state.models}
    areas |= {key(f"{root}/{name}"): orphans.Area(f"{root}/{name}") for name in ("files", "jobs")}
    areas[key(checkpoints)] = orphans.Area(checkpoints, only=orphans.JOB_FOLDER_PREFIX)
    return list(areas.values())


def _delete(removals: list[Removal], store: ArtifactStore, jobs: JobStore) -> list[str]:
    """Delete each removal; one that fails is reported and the rest go on."""
    errors = []
    for removal in removals:
        try:
            if removal.checkpoint_id is not None:
                jobs.delete_checkpoint(removal.checkpoint_id)
            store.delete(removal.uri)
        except Exception as error:  # a store or database fault: the next collection retries
            errors.append(f"{removal.uri}: {type(error).__name__}: {error}")
            logger.warning("could not remove %s", removal.uri, exc_info=True)
            continue
        logger.info("removed %s %s (%s)", removal.kind, removal.uri, removal.why)
    return errors
