"""Session fixtures: the tiny starter models, built once and cached between runs."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from tuneserve.registry import connect
from tuneserve.registry.keys import KeyStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.zoo.build import BuildReport, build_all
from tuneserve.zoo.register import register_starter_model

ROOT = Path(__file__).resolve().parents[1]
# Plug-in tasks of the tests (sixth_task) must import on every Ray worker, as a user's would
# from an installed package: workers inherit the environment of the cluster started here.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
)
POSTGRES_URL = os.environ.get(
    "TUNESERVE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Built models survive between runs (a fingerprint says when to rebuild); state does not.
ZOO_CACHE = ROOT / ".tuneserve" / "test-zoo"
# Modules that start Ray clusters of their own: they run first, before the session's
# cluster starts, so that two clusters never share the two cores.
OWN_CLUSTERS = ("test_cluster.py", "test_durability.py", "test_haproxy_ingress.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in OWN_CLUSTERS)  # stable: order kept


# Optimised variants are verified as in production, but on accuracy and agreement alone:
# speed is measured by the benchmarks, and a verdict that hung on the load of a shared test
# machine would make which variant serves a matter of chance. The starters get every kind
# (test_variants.py checks each); the service's own jobs verify int8 alone: two ONNX
# exports and a quantisation in each encoder job's evaluation weighed on a two-core suite.
VARIANTS = {"variants": {"min_speedup": 0}}
SERVICE_VARIANTS = {"variants": {"min_speedup": 0, "kinds": ["int8"]}}


@pytest.fixture(scope="session")
def zoo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("tuneserve"),
        zoo={"cache_dir": ZOO_CACHE, "profile": "tiny"},
        limits={"max_sequence_length": 128},
        tasks=VARIANTS,
    )


@pytest.fixture(scope="session")
def starter_models(zoo_settings: Settings) -> dict[str, BuildReport]:
    """Every tiny starter model, built (or taken from the cache) once per session."""
    return {report.name: report for report in build_all(zoo_settings)}


@pytest.fixture(scope="session")
def load_handler(starter_models: dict[str, BuildReport], zoo_settings: Settings):
    """A function that loads a fresh handler of a starter model (training mutates it)."""

    def load(name: str) -> TaskHandler:
        handler_class = builtin_catalog().get(starter_models[name].task).handler_class()
        return handler_class.load(
            zoo_settings.zoo.dir / name, max_length=zoo_settings.limits.max_sequence_length
        )

    return load


@pytest.fixture(scope="session")
def handlers(load_handler) -> dict[str, TaskHandler]:
    """One shared, inference-only handler per starter model."""
    names = ("sentiment", "entities", "qa", "translate-en-de", "chat")
    return {name: load_handler(name) for name in names}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def service_settings(zoo_settings: Settings, starter_models, tmp_path_factory) -> Settings:
    """A registry holding the tiny starter models (sentiment also as v2 = candidate)."""
    data_dir = tmp_path_factory.mktemp("service")
    settings = Settings(
        data_dir=data_dir,
        zoo={"cache_dir": zoo_settings.zoo.cache_dir, "profile": "tiny"},
        limits={
            "max_sequence_length": 512,  # room for a long chat stream to be cut off
            "max_upload_bytes": 256 * 1024,  # small, so the oversize test uploads little
        },
        ray={
            "num_cpus": 4,
            "metrics_export_port": free_port(),
            "metrics_report_interval_ms": 1000,  # metrics reach the agent within a second
            # Ray's socket paths must stay short: a temp dir under the project's data dir
            "temp_dir": Path(tempfile.mkdtemp(prefix="ray-", dir=ROOT / ".tuneserve")),
        },
        serving={
            "port": free_port(),
            "torch_threads": 1,  # six replicas and a training worker share two cores
            "task_server": {"num_cpus": 0.1, "max_ongoing_requests": 64},
            # two classification replicas: promotion must reach every one of them
            "task_overrides": {"classification": {"num_replicas": 2}},
            "alias_cache_ttl_s": 0.2,
        },
        training={"default_batch_size": 8},
        auth={"mode": "keys"},  # every API route needs a key, as on a cluster
        tasks=SERVICE_VARIANTS,
    )
    registry, store = connect(settings.registry)
    for report in starter_models.values():
        register_starter_model(report, settings, registry, store)
    first = registry.get_version("sentiment", 1)
    registry.register_version(
        "sentiment",
        artifact_uri=first.artifact_uri,
        sha256=first.sha256,
        metrics=first.metrics,
        variants=first.variants,
        base_version=1,
        lineage={"source": "test copy of v1"},
    )
    registry.move_alias("sentiment", "candidate", 2, None)
    registry.engine.dispose()
    return settings


@pytest.fixture(scope="session")
def admin_key(service_settings: Settings) -> str:
    """An admin API key of the session's service (made before it starts: it needs one)."""
    registry, _ = connect(service_settings.registry)
    _, key = KeyStore(registry.engine).create("ops", ["admin"], "tests")
    registry.engine.dispose()
    return key


@pytest.fixture(scope="session")
def admin_headers(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture(scope="session")
def service(service_settings: Settings, admin_key: str):
    """The whole application on one Ray cluster for the session; yields its base URL."""
    from tuneserve.serving import local

    url = local.start(service_settings)
    try:
        yield url
    finally:
        local.stop()
        shutil.rmtree(service_settings.ray.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def http(service: str, admin_headers: dict[str, str]):
    """A client of the session's service holding the admin key."""
    with httpx.Client(base_url=service, timeout=120, headers=admin_headers) as client:
        yield client


def wait_until_ready(http: httpx.Client, timeout_s: float = 180) -> None:
    """Until the app's /readyz says every production model is loaded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready in time: {http.get('/readyz').text}")


@pytest.fixture(scope="session")
def ready_service(service: str, http: httpx.Client) -> str:
    """The service once /readyz says every production model is loaded."""
    wait_until_ready(http)
    return service


def json_log_lines(settings: Settings, needle: str, timeout_s: float = 30) -> list[str]:
    """The JSON log lines holding ``needle`` in the Ray session's logs, once there are any."""
    logs = settings.ray.temp_dir / "session_latest" / "logs"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [
            line
            for path in logs.rglob("*")
            if path.is_file() and path.stat().st_size < 50_000_000
            for line in path.read_text(errors="replace").splitlines()
            if needle in line and line.startswith("{")
        ]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no JSON log line with {needle!r} in {timeout_s} s")


# --- registry ----------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model directory as the artifact store sees one: weights, config, a subfolder."""
    src = tmp_path / "model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"weights" * 1000)
    (src / "config.json").write_text('{"labels": 2}')
    (src / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return src


def production_copy(
    settings: Settings,
    source: str,
    copy: str,
    task: str,
    verdicts: Callable[[dict], dict] = lambda variants: variants,
) -> str:
    """Register ``copy``: version 1 = ``source``'s version 1, and production. Tests that
    train or promote work on a copy, so the starter models stay as the others expect;
    ``verdicts`` changes the variants' verdicts the copy is recorded with. Registering the
    same copy again changes nothing."""
    registry, _ = connect(settings.registry)
    first = registry.get_version(source, 1)
    registry.create_model(copy, task, f"test copy of {source}")
    if not registry.list_versions(copy):
        registry.register_version(
            copy,
            artifact_uri=first.artifact_uri,
            sha256=first.sha256,
            metrics=first.metrics,
            variants=verdicts(first.variants),
        )
        registry.move_alias(copy, "production", 1, None)
    registry.engine.dispose()
    return copy


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(POSTGRES_URL, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        pytest.skip(
            f"PostgreSQL at {make_url(POSTGRES_URL)!r} is unreachable, so the Postgres half "
            f"is skipped; start it or point TUNESERVE_TEST_POSTGRES_URL at one ({exc.orig})"
        )
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a Postgres schema of its own dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'registry.db'}"
        return
    yield from postgres_schema_url(request.getfixturevalue("postgres_admin"))


def postgres_schema_url(admin: Engine) -> Iterator[str]:
    """A Postgres URL whose search_path is a schema of its own, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


# --- S3 --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real S3 API (moto's server, in its own process) with one bucket.

    The standard AWS variables point every client at it: s3fs here, and the Ray nodes the
    cluster tests start, which inherit this environment.
    """
    import subprocess
    import sys

    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"moto did not start: see {log.name}") from None
                time.sleep(0.2)
        bucket = "tuneserve-test"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield {"endpoint": endpoint, "bucket": bucket, "env": env}
    finally:
        server.terminate()
        server.wait(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
