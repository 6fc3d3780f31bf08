"""Registry and artifact store, against SQLite and (when reachable) a real PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

import fsspec
import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from sqlite_lock import write_lock
from tuneserve.errors import Conflict, InvalidRequest, NotFound, Unavailable
from tuneserve.registry import ArtifactStore, Registry, weights_sha256
from tuneserve.registry.aliases import ROLLBACK
from tuneserve.registry.db import AliasHistoryRow, VersionRow
from tuneserve.registry.jobs import JobStore
from tuneserve.registry.store import COMPLETE_MARKER

SHA = "ab" * 32
THREADS = 8


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    reg = Registry.from_url(db_url)
    yield reg
    reg.engine.dispose()


@pytest.fixture
def clf(registry: Registry) -> Registry:
    """A registry holding model 'clf' with versions 1-3 and production at 1."""
    registry.create_model("clf", "text-classification", "sentiment")
    for accuracy in (0.8, 0.85, 0.9):
        registry.register_version(
            "clf", artifact_uri="/a", sha256=SHA, metrics={"accuracy": accuracy}
        )
    registry.move_alias("clf", "production", 1, expected_from=None, reason="initial")
    return registry


def run_together(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i in range(count) in threads released at the same moment."""
    barrier = threading.Barrier(count)

    def attempt(i: int) -> Any:
        barrier.wait()
        try:
            return call(i)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(attempt, range(count)))


# --- models and versions -------------------------------------------------------------------


def test_versions_number_from_one_and_round_trip(registry: Registry) -> None:
    registry.create_model("clf", "text-classification", "sentiment")
    made = [
        registry.register_version(
            "clf",
            artifact_uri=f"/artifacts/clf/{i}",
            sha256=f"{i:064x}",
            metrics={"accuracy": 0.5 + i / 10, "per_label": {"pos": 0.9}},
            base_version=i - 1 if i > 1 else None,
            lineage={"job": f"ftjob-{i}", "hyperparameters": {"lr": 1e-4}},
        )
        for i in (1, 2, 3)
    ]
    assert [v.version for v in made] == [1, 2, 3]
    assert registry.list_versions("clf") == made
    second = registry.get_version("clf", 2)
    assert second == made[1]
    assert second.task == "text-classification"
    assert second.artifact_uri == "/artifacts/clf/2"
    assert second.sha256 == f"{2:064x}"
    assert second.metrics == {"accuracy": 0.7, "per_label": {"pos": 0.9}}
    assert second.lineage == {"job": "ftjob-2", "hyperparameters": {"lr": 1e-4}}
    assert second.base_version == 1
    assert second.created_at.tzinfo is not None
    assert second.created_at.utcoffset() == UTC.utcoffset(None)


def test_register_version_checks_its_inputs(registry: Registry) -> None:
    with pytest.raises(NotFound, match="model 'ghost' not found"):
        registry.register_version("ghost", artifact_uri="/a", sha256=SHA, metrics={})
    registry.create_model("clf", "text-classification")
    with pytest.raises(NotFound, match="no version 4"):
        registry.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={}, base_version=4)
    with pytest.raises(InvalidRequest, match="sha256"):
        registry.register_version("clf", artifact_uri="/a", sha256="xyz", metrics={})
    assert registry.list_versions("clf") == []


def test_versions_are_immutable(clf: Registry) -> None:
    with Session(clf.engine) as session:
        row = session.scalars(select(VersionRow).where(VersionRow.version == 2)).one()
        row.metrics = {"accuracy": 1.0}
        with pytest.raises(Conflict, match="immutable"):
            session.commit()
    assert clf.get_version("clf", 2).metrics == {"accuracy": 0.85}


def test_create_model_is_idempotent_per_task(registry: Registry) -> None:
    first = registry.create_model("clf", "text-classification", "sentiment")
    assert registry.create_model("clf", "text-classification") == first
    with pytest.raises(Conflict, match="already exists with task 'text-classification'"):
        registry.create_model("clf", "ner")
    registry.create_model("ner-1", "ner")
    assert [m.name for m in registry.list_models()] == ["clf", "ner-1"]
    assert registry.get_model("clf").description == "sentiment"
    with pytest.raises(NotFound):
        registry.get_model("ghost")


@pytest.mark.parametrize("name", ["", "Upper", "a" * 65, "has space", "dot.name", "x\n", "é"])
def test_create_model_rejects_bad_names(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid model name"):
        registry.create_model(name, "ner")


def test_resolve(clf: Registry) -> None:
    clf.move_alias("clf", "candidate", 3, expected_from=None)
    assert clf.resolve("clf").version == 1
    assert clf.resolve("clf", None).version == 1
    assert clf.resolve("clf", 2).version == 2
    assert clf.resolve("clf", "3").version == 3
    assert clf.resolve("clf", "candidate").version == 3
    with pytest.raises(NotFound, match="no version 9"):
        clf.resolve("clf", 9)
    with pytest.raises(NotFound, match="no version 9"):
        clf.resolve("clf", "9")
    with pytest.raises(NotFound, match="no version 99999999999"):
        clf.resolve("clf", "99999999999")
    with pytest.raises(NotFound, match="no alias 'staging'"):
        clf.resolve("clf", "staging")
    with pytest.raises(NotFound, match="model 'ghost' not found"):
        clf.resolve("ghost", 1)
    clf.create_model("fresh", "ner")
    with pytest.raises(NotFound, match="no alias 'production'"):
        clf.resolve("fresh")


# --- aliases -------------------------------------------------------------------------------


def test_move_alias_compare_and_set(clf: Registry) -> None:
    move = clf.move_alias("clf", "production", 2, expected_from=1, reason="better")
    assert (move.from_version, move.to_version, move.reason) == (1, 2, "better")
    assert move.moved_at.tzinfo is not None
    assert clf.aliases("clf") == {"production": 2}
    with pytest.raises(Conflict, match="is version 2, not version 1"):
        clf.move_alias("clf", "production", 3, expected_from=1)
    with pytest.raises(Conflict, match="is version 2, not unset"):
        clf.move_alias("clf", "production", 3, expected_from=None)
    with pytest.raises(Conflict, match="is unset, not version 1"):
        clf.move_alias("clf", "candidate", 3, expected_from=1)
    with pytest.raises(NotFound, match="no version 7"):
        clf.move_alias("clf", "production", 7, expected_from=2)
    with pytest.raises(InvalidRequest, match="invalid alias name"):
        clf.move_alias("clf", "3", 3, expected_from=None)
    assert clf.aliases("clf") == {"production": 2}
    assert len(clf.alias_history("clf", "production")) == 2


def test_history_and_last_move(clf: Registry) -> None:
    clf.move_alias("clf", "production", 2, expected_from=1, reason="promote 2")
    clf.move_alias("clf", "production", 3, expected_from=2, reason="promote 3")
    clf.move_alias("clf", "production", 2, expected_from=3, reason=ROLLBACK)
    history = clf.alias_history("clf", "production")
    assert [(m.from_version, m.to_version, m.reason) for m in history] == [
        (3, 2, ROLLBACK),
        (2, 3, "promote 3"),
        (1, 2, "promote 2"),
        (None, 1, "initial"),
    ]
    assert clf.last_move("clf") == history[0]
    assert clf.last_move("clf", "candidate") is None
    assert clf.alias_history("clf", "candidate") == []
    with pytest.raises(NotFound, match="model 'ghost' not found"):
        clf.last_move("ghost")


def test_a_move_must_change_the_alias(clf: Registry) -> None:
    with pytest.raises(InvalidRequest, match="a move must change it") as refused:
        clf.move_alias("clf", "production", 1, expected_from=1)
    assert refused.value.param == "version"
    assert [m.to_version for m in clf.alias_history("clf", "production")] == [1]


def test_last_move_skips_the_no_op_rows_of_older_releases(clf: Registry) -> None:
    """Releases before no-op promotions wrote a 2 → 2 row when production was promoted again;
    such a row must not hide the move that really happened (1 → 2)."""
    real = clf.move_alias("clf", "production", 2, expected_from=1, reason="promoted")
    with Session(clf.engine) as session, session.begin():
        session.add(
            AliasHistoryRow(
                model_name="clf", alias="production", from_version=2, to_version=2, reason="x"
            )
        )
    assert clf.alias_history("clf", "production")[0].from_version == 2
    assert clf.last_move("clf") == real


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_alias_moves_have_one_winner(clf: Registry) -> None:
    for _ in range(THREADS):
        clf.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    targets = [2 + i for i in range(THREADS)]
    results = run_together(
        THREADS, lambda i: clf.move_alias("clf", "production", targets[i], expected_from=1)
    )
    winners = [r for r in results if not isinstance(r, Conflict)]
    assert len(winners) == 1
    assert all("re-read the aliases" in str(r) for r in results if isinstance(r, Conflict))
    assert clf.aliases("clf")["production"] == winners[0].to_version
    history = clf.alias_history("clf", "production")
    assert len(history) == 2
    assert history[0] == winners[0]


def test_concurrent_first_sets_have_one_winner(clf: Registry) -> None:
    results = run_together(
        THREADS, lambda i: clf.move_alias("clf", "candidate", 1 + i % 3, expected_from=None)
    )
    winners = [r for r in results if not isinstance(r, Conflict)]
    assert len(winners) == 1
    assert clf.aliases("clf")["candidate"] == winners[0].to_version
    assert len(clf.alias_history("clf", "candidate")) == 1


def test_concurrent_registrations_get_consecutive_numbers(registry: Registry) -> None:
    created = run_together(THREADS, lambda i: registry.create_model("clf", "text-classification"))
    assert len(set(created)) == 1

    def register_three(i: int) -> list[int]:
        return [
            registry.register_version("clf", artifact_uri=f"/a/{i}", sha256=SHA, metrics={}).version
            for _ in range(3)
        ]

    numbers = sorted(n for batch in run_together(THREADS, register_three) for n in batch)
    assert numbers == list(range(1, 3 * THREADS + 1))


# --- SQLite: readers and the write lock ----------------------------------------------------


def sqlite_clf(tmp_path: Path, busy_timeout_s: float) -> tuple[Registry, str]:
    """Model 'clf' (versions 1-3, production 1) in a SQLite file with that busy timeout."""
    url = f"sqlite:///{tmp_path / 'locks' / 'registry.db'}?timeout={busy_timeout_s}"
    registry = Registry.from_url(url)
    registry.create_model("clf", "text-classification")
    for _ in range(3):
        registry.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    registry.move_alias("clf", "production", 1, expected_from=None, reason="initial")
    return registry, url


def test_sqlite_reads_do_not_wait_for_a_writer_and_writes_fail_typed(tmp_path: Path) -> None:
    """With a 1 s busy timeout, a read that queued for the write lock would fail; none does.
    A write that cannot get the lock in time is a 503 Unavailable, and changes nothing."""
    registry, url = sqlite_clf(tmp_path, busy_timeout_s=1)
    jobs = JobStore(registry.engine)
    with write_lock(url):
        assert registry.get_model("clf").aliases == {"production": 1}
        assert [m.name for m in registry.list_models()] == ["clf"]
        assert [v.version for v in registry.list_versions("clf")] == [1, 2, 3]
        assert registry.get_version("clf", 2).version == 2
        assert registry.resolve("clf").version == 1
        assert registry.aliases("clf") == {"production": 1}
        assert registry.last_move("clf").to_version == 1
        assert registry.model_view("clf")[1] == {1, 2, 3}
        assert len(registry.alias_history("clf", "production")) == 1
        assert jobs.count_by_state() == {}
        assert jobs.next_job(("queued",)) is None
        assert jobs.finished_durations() == []
        with pytest.raises(NotFound):
            jobs.get_job("ftjob-none")
        with pytest.raises(Unavailable, match="registry database is busy") as busy:
            registry.move_alias("clf", "production", 2, expected_from=1)
        assert busy.value.status_code == 503 and busy.value.retry_after_s >= 1
        with pytest.raises(Unavailable):
            registry.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    assert registry.aliases("clf") == {"production": 1}
    assert [m.to_version for m in registry.alias_history("clf", "production")] == [1]
    assert [v.version for v in registry.list_versions("clf")] == [1, 2, 3]
    # the connections that failed went back to the pool in a usable state
    assert registry.move_alias("clf", "production", 2, expected_from=1).to_version == 2
    registry.engine.dispose()


def test_a_sqlite_writer_waits_for_the_lock_then_writes(tmp_path: Path) -> None:
    registry, url = sqlite_clf(tmp_path, busy_timeout_s=30)
    released = threading.Event()
    with write_lock(url) as holder:

        def release_soon() -> None:
            released.set()  # before the rollback: the move cannot commit before this
            holder.rollback()

        def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement == "BEGIN IMMEDIATE":  # the move has asked for the lock
                threading.Timer(0.2, release_soon).start()

        event.listen(registry.engine, "before_cursor_execute", on_statement)
        move = registry.move_alias("clf", "production", 2, expected_from=1)
        event.remove(registry.engine, "before_cursor_execute", on_statement)
        assert released.is_set()
    assert move.to_version == 2 and registry.aliases("clf") == {"production": 2}
    registry.engine.dispose()


# --- restart -------------------------------------------------------------------------------


def test_restart_keeps_everything(clf: Registry, db_url: str) -> None:
    clf.move_alias("clf", "production", 3, expected_from=1, reason="promote")
    before = (
        clf.list_models(),
        clf.list_versions("clf"),
        clf.aliases("clf"),
        clf.alias_history("clf", "production"),
    )
    clf.engine.dispose()
    reopened = Registry.from_url(db_url)
    try:
        after = (
            reopened.list_models(),
            reopened.list_versions("clf"),
            reopened.aliases("clf"),
            reopened.alias_history("clf", "production"),
        )
        assert after == before
        assert reopened.last_move("clf") == before[3][0]
        assert reopened.last_move("clf").from_version == 1
    finally:
        reopened.engine.dispose()


# --- artifact store ------------------------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    root = f"memory://artifacts-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_local_store_round_trip(tmp_path: Path, model_dir: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"), tmp_path / "cache")
    uri = store.put_dir(model_dir, "clf/1")
    assert Path(uri).is_absolute()
    assert store.exists(uri)
    assert store.local_path(uri) == Path(uri)
    assert tree(Path(uri)) == tree(model_dir)
    assert sorted(p.name for p in (tmp_path / "artifacts" / "clf").iterdir()) == ["1"]
    assert not (tmp_path / "cache").exists()
    with pytest.raises(Conflict, match="already exists"):
        store.put_dir(model_dir, "clf/1")
    with pytest.raises(NotFound):
        store.local_path(str(tmp_path / "artifacts" / "clf" / "2"))


def test_remote_store_downloads_once_into_cache(
    tmp_path: Path, model_dir: Path, memory_url: str
) -> None:
    store = ArtifactStore(memory_url, tmp_path / "cache")
    uri = store.put_dir(model_dir, "clf/1")
    assert uri.startswith("memory://")
    assert store.exists(uri)
    local = store.local_path(uri)
    assert local.parent == tmp_path / "cache"
    assert tree(local) == tree(model_dir)
    assert COMPLETE_MARKER not in tree(local)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [local.name]
    with pytest.raises(Conflict, match="already exists"):
        store.put_dir(model_dir, "clf/1")
    fsspec.filesystem("memory").rm(uri, recursive=True)
    assert store.local_path(uri) == local  # served from the cache, not downloaded again


def test_remote_artifact_without_marker_is_incomplete(tmp_path: Path, memory_url: str) -> None:
    fsspec.filesystem("memory").pipe_file(f"{memory_url}/half/model.safetensors", b"w")
    store = ArtifactStore(memory_url, tmp_path / "cache")
    uri = f"{memory_url}/half"
    assert not store.exists(uri)
    with pytest.raises(NotFound, match="incomplete"):
        store.local_path(uri)


@pytest.mark.parametrize("key", ["", "/abs", "a/", "a//b", "../up", "a/../b", "a/./b", "a\\b"])
def test_store_rejects_bad_keys(tmp_path: Path, model_dir: Path, key: str) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"), tmp_path / "cache")
    with pytest.raises(InvalidRequest, match="invalid artifact key"):
        store.put_dir(model_dir, key)


def test_weights_sha256(model_dir: Path) -> None:
    first = weights_sha256(model_dir)
    assert first == weights_sha256(model_dir)
    assert first == hashlib.sha256(b"weights" * 1000).hexdigest()
    (model_dir / "config.json").write_text("{}")  # not weights: the hash stays
    assert weights_sha256(model_dir) == first
    (model_dir / "model.safetensors").write_bytes(b"weights" * 999 + b"weighTs")
    assert weights_sha256(model_dir) != first
    (model_dir / "a.safetensors").write_bytes(b"head")
    both = hashlib.sha256(b"head" + b"weights" * 999 + b"weighTs").hexdigest()
    assert weights_sha256(model_dir) == both
    with pytest.raises(FileNotFoundError):
        weights_sha256(model_dir / "tokenizer")
