"""Metrics without a cluster: the catalog, the registry collector, the dashboard's PromQL."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from promql import dashboard_queries, metric_names, runnable
from sqlalchemy import update
from tuneserve.registry import Registry
from tuneserve.registry.db import JobRow, make_engine
from tuneserve.registry.jobs import JobStore
from tuneserve.telemetry import ALL_METRICS, exported_names, recorder
from tuneserve.telemetry.catalog import REPLICA_METRICS, SWAPS
from tuneserve.telemetry.recorder import Recorder, _tags
from tuneserve.telemetry.registry_collector import collector_registry

ROOT = Path(__file__).resolve().parents[1]


def samples(text: bytes) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_catalog_names_follow_prometheus_conventions():
    names = [spec.name for spec in ALL_METRICS]
    assert len(names) == len(set(names))
    for spec in ALL_METRICS:
        assert spec.name.startswith("tuneserve_"), spec.name
        assert not spec.name.endswith("_total"), "exporters add _total to counters"
        assert spec.description
        if spec.kind == "histogram":
            assert list(spec.buckets) == sorted(spec.buckets) and spec.buckets, spec.name
        if "seconds" in spec.name:
            assert spec.name.endswith(("_seconds", "_per_second")), spec.name
        # bounded labels only: nothing a client can make up
        assert not {"text", "input", "request_id", "path", "user"} & set(spec.labels)


def test_a_recording_mistake_is_logged_never_raised_and_a_disabled_recorder_does_nothing():
    with pytest.raises(ValueError, match="takes labels"):
        _tags(SWAPS, {"task": "classification", "model": "m"})
    Recorder(enabled=True).count(SWAPS, task="classification", model="m")  # no raise
    assert SWAPS.name in recorder._failed  # logged once instead
    Recorder(enabled=False).count(SWAPS)  # metrics off: not even a label check
    assert all(spec.kind in {"counter", "gauge", "histogram"} for spec in REPLICA_METRICS)


@pytest.fixture
def registry(tmp_path) -> Registry:
    registry = Registry(make_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    registry.create_model("clf", "classification")
    for accuracy in (0.8, 0.9):
        registry.register_version(
            "clf",
            artifact_uri=f"file:///a/{accuracy}",
            sha256="0" * 64,
            metrics={"accuracy": accuracy, "per_class": {"pos": {"f1": 1.0}}, "ok": True},
        )
    registry.move_alias("clf", "production", 1, None)
    registry.move_alias("clf", "candidate", 2, None)
    return registry


def _job(jobs: JobStore, status: str, minutes: float = 0) -> str:
    job = jobs.create_job(
        model="clf",
        base_version=1,
        task="classification",
        training_file="file-x",
        validation_file=None,
        hyperparameters={},
        promotion={},
        suffix=None,
    )
    with jobs._transaction() as session:
        fields = {"status": status}
        if minutes:
            fields["finished_at"] = job.created_at + timedelta(minutes=minutes)
        session.execute(update(JobRow).where(JobRow.id == job.id).values(**fields))
    return job.id


def test_registry_collector_reports_versions_jobs_and_training_progress(registry):
    jobs = JobStore(registry.engine)
    _job(jobs, "succeeded", minutes=1.5)
    _job(jobs, "succeeded", minutes=20)
    _job(jobs, "failed", minutes=0.1)
    _job(jobs, "queued")
    running = _job(jobs, "running")
    jobs.add_event(
        running,
        "step 5/40",
        data={"step": 5, "epoch": 1, "total_steps": 40, "train_loss": 0.7, "learning_rate": 1e-4},
    )
    jobs.add_event(
        running,
        "step 10/40",
        data={"step": 10, "epoch": 1, "total_steps": 40, "train_loss": 0.5, "learning_rate": 9e-5},
    )
    jobs.add_event(running, "status: running", data={"status": "running"})

    served = ["classification", "ner"]
    got = samples(generate_latest(collector_registry(lambda: (registry, jobs), served)))

    def value(name: str, **labels) -> float:
        return got[(name, frozenset({k: str(v) for k, v in labels.items()}.items()))]

    assert value("tuneserve_registry_up") == 1
    info = "tuneserve_model_version_info"
    assert value(info, model="clf", task="classification", alias="production", version=1) == 1
    assert value(info, model="clf", task="classification", alias="candidate", version=2) == 1
    evaluation = "tuneserve_model_version_evaluation"
    labels = {"model": "clf", "task": "classification", "metric": "accuracy"}
    assert value(evaluation, version=2, **labels) == 0.9
    assert not [key for key in got if key[0] == evaluation and ("metric", "ok") in key[1]]

    states = {"task": "classification"}
    assert value("tuneserve_fine_tuning_jobs", state="succeeded", **states) == 2
    assert value("tuneserve_fine_tuning_jobs", state="running", **states) == 1
    assert value("tuneserve_fine_tuning_jobs", state="cancelled", **states) == 0
    assert value("tuneserve_fine_tuning_jobs", task="ner", state="queued") == 0  # no job yet

    duration = "tuneserve_fine_tuning_job_duration_seconds"
    ok = {"task": "classification", "state": "succeeded"}
    assert value(f"{duration}_count", **ok) == 2
    assert value(f"{duration}_sum", **ok) == pytest.approx(90 + 1200)
    assert value(f"{duration}_bucket", le="120.0", **ok) == 1
    assert value(f"{duration}_bucket", le="+Inf", **ok) == 2

    job = {"job_id": running, "model": "clf", "task": "classification"}
    assert value("tuneserve_fine_tuning_step", **job) == 10
    assert value("tuneserve_fine_tuning_total_steps", **job) == 40
    assert value("tuneserve_fine_tuning_epoch", **job) == 1
    assert value("tuneserve_fine_tuning_train_loss", **job) == 0.5
    assert value("tuneserve_fine_tuning_learning_rate", **job) == 9e-5


def test_a_scrape_without_the_database_still_answers():
    def broken():
        raise ConnectionError("database is down")

    got = samples(generate_latest(collector_registry(broken, [])))
    assert got[("tuneserve_registry_up", frozenset())] == 0
    assert any(name == "tuneserve_build_info" for name, _ in got)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (route) (rate(a_total{x="y"}[5m]))', {"a_total"}),
        (
            "histogram_quantile(0.9, sum by (le, model) (rate(b_bucket[$__rate_interval])))",
            {"b_bucket"},
        ),
        ("c / on (model) group_left() d > 0", {"c", "d"}),
        ("label_values(e, model)", {"e", "model"}),
    ],
)
def test_promql_names_are_read_right(expr, names):
    assert metric_names(expr) == names


def test_every_dashboard_query_reads_only_exported_metrics():
    exported = exported_names()
    queries = dashboard_queries()
    assert len(queries) >= 20
    for query in queries:
        names = metric_names(runnable(query))
        assert names, query
        assert names <= exported, (query, names - exported)
    used = set().union(*(metric_names(runnable(q)) for q in queries))
    # the dashboard shows every part of the issue: traffic to training loss
    for name in (
        "tuneserve_http_requests_total",
        "tuneserve_http_request_duration_seconds_bucket",
        "tuneserve_batch_size_count",
        "tuneserve_queue_duration_seconds_bucket",
        "tuneserve_output_tokens_total",
        "tuneserve_model_version_info",
        "tuneserve_swaps_total",
        "tuneserve_fine_tuning_jobs",
        "tuneserve_fine_tuning_train_loss",
    ):
        assert name in used, name


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def test_kubernetes_and_local_scrapes_rename_the_same_way():
    """One story for the ray_ prefix: both shipped scrape configs relabel it away alike."""
    local = yaml.safe_load((ROOT / "deployments" / "prometheus" / "prometheus.yml").read_text())
    local_jobs = {job["job_name"]: job for job in local["scrape_configs"]}
    manifests = (ROOT / "k8s" / "monitoring" / "podmonitors.yaml").read_text()
    monitors = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(manifests)}
    assert set(monitors) == set(local_jobs)
    for name, monitor in monitors.items():
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        k8s_rules = [
            {_snake(key): value for key, value in rule.items()}
            for rule in endpoint.get("metricRelabelings", [])
        ]
        assert k8s_rules == local_jobs[name].get("metric_relabel_configs", []), name
        assert endpoint["path"] == local_jobs[name].get("metrics_path", "/metrics")
    rename = local_jobs["tuneserve-replicas"]["metric_relabel_configs"][0]
    assert re.fullmatch(rename["regex"], "ray_tuneserve_swaps_total")
    assert not re.fullmatch(rename["regex"], "ray_serve_num_http_requests_total")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_monitoring_manifests_render_with_kustomize():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "k8s" / "monitoring")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered)]
    assert kinds == ["PodMonitor", "PodMonitor"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_shipped_scrape_config_is_valid_for_prometheus():
    config = ROOT / "deployments" / "prometheus" / "prometheus.yml"
    subprocess.run(["promtool", "check", "config", str(config)], check=True, capture_output=True)
