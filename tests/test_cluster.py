"""A real three-node Ray cluster with Postgres and S3: placement, a training job on another
node, a promotion from S3 under load, autoscaling and the loss of a node.

The scenario (cluster_scenario.py) runs in a process of its own and reports what it saw;
each test below checks one part of that report. Figures are printed (``pytest -s``) and
kept in the report file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, free_port, postgres_schema_url

SCENARIO_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def report(starter_models, zoo_settings, s3_server, postgres_admin, tmp_path_factory) -> dict:
    data_dir = tmp_path_factory.mktemp("cluster")
    report_path = data_dir / "report.json"
    schema_urls = postgres_schema_url(postgres_admin)
    database_url = next(schema_urls)
    # Ray's socket paths must stay short: a temp dir under the project's data dir
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-mn-", dir=ROOT / ".tuneserve"))
    command = [
        sys.executable,
        str(ROOT / "tests" / "cluster_scenario.py"),
        f"--data-dir={data_dir}",
        f"--zoo-cache={zoo_settings.zoo.cache_dir}",
        f"--report={report_path}",
        f"--temp-dir={temp_dir}",
        f"--database-url={database_url}",
        f"--artifact-url=s3://{s3_server['bucket']}/cluster-{uuid.uuid4().hex[:8]}",
        f"--port={free_port()}",
    ]
    try:
        run = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SCENARIO_TIMEOUT_S,
            cwd=ROOT,
            # Ray writes the cluster's address file under RAY_TMPDIR: keep it in ours
            env=os.environ
            | {
                "RAY_TMPDIR": str(temp_dir),
                # replicas and handles report load each second (Serve's default: 10 s), so
                # the autoscaling test waits for the decision, not for the report
                "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
            },
        )
        found = json.loads(report_path.read_text()) if report_path.exists() else {}
        print(json.dumps(found, indent=2))
        assert run.returncode == 0, f"scenario failed:\n{run.stderr[-6000:]}\nreport: {found}"
        return found
    finally:
        next(schema_urls, None)  # drops the schema
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


def test_the_cluster_has_three_nodes_and_refuses_node_local_storage(report):
    assert report["nodes"] == 3
    refusal = report["refused_on_sqlite"]
    assert refusal.startswith("Misconfigured: this Ray cluster has 3 nodes")
    assert "TUNESERVE_REGISTRY__DATABASE_URL" in refusal and "s3://" in refusal


def test_task_servers_run_on_the_encoder_nodes(report):
    """Placed by the `encoder` resource that only the worker nodes advertise."""
    assert report["readyz"]["ready"] is True
    assert len(report["placements"]["classification"]) == 2
    for nodes in report["placements"].values():
        assert nodes and set(nodes) <= {"a", "b"}, report["placements"]


def test_the_training_worker_runs_on_another_node_than_the_runner(report):
    job = report["job"]
    assert job["status"] == "succeeded", job
    assert job["training_node"] == "a"  # the only `trainer` node; the runner is on the head
    assert report["candidate_uri"].startswith("s3://")


def test_a_version_from_s3_is_promoted_on_every_replica_with_no_failed_request(report):
    promotion = report["promotion"]
    version = report["job"]["candidate_version"]
    assert promotion["failed"] == 0 and promotion["requests"] > 20
    assert len(promotion["resident"]) == 2  # two replicas, each on its own node
    for resident in promotion["resident"].values():
        # resident labels are name@version, plus :variant when it is not fp32
        served = f"sentiment@{version}"
        assert any(label == served or label.startswith(f"{served}:") for label in resident)


def test_a_task_scales_up_under_load_and_back_down_after_with_no_failed_request(report):
    scaling = report["autoscaling"]
    assert scaling["failed"] == 0 and scaling["requests"] > 0
    print(
        f"NER autoscaling: 1 → 2 replicas after {scaling['up_s']:.1f} s of load, 2 → 1 "
        f"{scaling['down_s']:.1f} s after it stopped; {scaling['requests']} requests, none failed"
    )


def test_losing_a_node_fails_requests_only_until_serve_reschedules(report):
    loss = report["node_loss"]
    assert loss["requests_before_kill"] > 20  # the node died under load
    assert loss["failed_after_restored"] == 0
    print(
        f"node lost under load: {loss['failed']} of {loss['requests']} requests failed; every "
        f"route answered again after {loss['answering_again_s']:.1f} s, and both replicas ran "
        f"again after {loss['replicas_restored_s']:.1f} s"
    )
    # the lost replica was started again on the surviving encoder node
    assert report["placements_after"]["classification"] == ["a", "a"]
    assert report["placements_after"]["ner"] == ["a"]
