"""tuneserve on a real multi-node Ray cluster, with Postgres and S3: run by test_cluster.py.

It runs in a process of its own, because a process joins one Ray cluster only and the suite's
single-node one is already up. Three nodes on this machine (``ray.cluster_utils.Cluster``:
their own raylets, object stores and worker processes, one GCS):

- head:   ``control_plane`` (HTTP proxy, gateway, job runner), as the KubeRay head pod;
- node A: ``encoder`` and ``trainer``: task servers and the Ray Train worker;
- node B: ``encoder``: task servers only; it is the node that dies.

Registry on Postgres, artifacts on S3 (moto), both given by the caller. The scenario writes
a JSON report of what it saw: placements, the job, the promotion under load, the node
loss (failed requests, recovery time) and one task's autoscaling (1 → 2 → 1 replicas).
"""

from __future__ import annotations

import argparse
import functools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ray
from conftest import SERVICE_VARIANTS
from ray import serve
from ray.cluster_utils import Cluster
from ray.serve.exceptions import DeploymentUnavailableError
from tuneserve.registry import connect, schema
from tuneserve.registry.db import make_engine
from tuneserve.serving import local
from tuneserve.serving.app import build_app
from tuneserve.serving.names import task_app_name, task_server_name
from tuneserve.settings import Settings
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

ROUTES = {
    "classification": ("/v1/classify", {"inputs": "A fine film."}),
    "ner": ("/v1/ner", {"inputs": "Anna flew to Paris."}),
}
REVIEWS = [
    ("a moving, beautifully acted film", "positive"),
    ("a tedious mess with no ideas", "negative"),
    ("warm, funny and wise", "positive"),
    ("dull from start to finish", "negative"),
]


class Load:
    """Concurrent requests to one route until stopped; every answer kept with its time."""

    def __init__(self, url: str, route: str, body: dict, threads: int):
        self.url, self.route, self.body = url, route, body
        self.answers: list[tuple[float, int, int | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.route, json=self.body)
                    status = response.status_code
                    version = response.json().get("version") if status == 200 else None
                except httpx.HTTPError:
                    status, version = 0, None  # no answer at all
                self.answers.append((time.monotonic(), status, version))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def failed(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, status, _ in self.answers if since <= t <= until and status != 200)


def until(condition: Callable[[], object], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took (AssertionError past the timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def replicas_of(task: str) -> list[dict]:
    handle = serve.get_deployment_handle(
        task_server_name(task), app_name=task_app_name("tuneserve", task)
    )
    return handle.broadcast("info").results(timeout_s=60)


def running_replicas(task: str) -> int:
    status = serve.status().applications[task_app_name("tuneserve", task)]
    status = status.deployments[task_server_name(task)]
    return status.replica_states.get("RUNNING", 0)


def start_cluster(temp_dir: Path) -> tuple[Cluster, dict[str, object]]:
    # Cluster writes its address to $RAY_TMPDIR/ray/ray_current_cluster (the caller's dir)
    (temp_dir / "ray").mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "resources": {"control_plane": 1},
            "temp_dir": str(temp_dir),
            "include_dashboard": False,
        },
    )
    nodes = {
        "a": cluster.add_node(num_cpus=2, resources={"encoder": 1, "trainer": 1}),
        "b": cluster.add_node(num_cpus=2, resources={"encoder": 1}),
    }
    cluster.wait_for_nodes()
    return cluster, nodes


def scenario_settings(args: argparse.Namespace, address: str, port: int) -> Settings:
    return Settings(
        data_dir=args.data_dir,
        zoo={"cache_dir": args.zoo_cache, "profile": "tiny"},
        limits={"max_sequence_length": 128},
        registry={
            "database_url": args.database_url,
            "artifact_url": args.artifact_url,
            "migrate_on_start": False,  # as in production: `tuneserve db upgrade` first
        },
        ray={"address": address},
        serving={
            "port": port,
            "served_tasks": list(ROUTES),
            "alias_cache_ttl_s": 0.2,
            "gateway": {"num_cpus": 0.05, "resources": {"control_plane": 0.01}},
            "task_server": {"num_cpus": 0.1, "resources": {"encoder": 0.01}},
            "task_overrides": {
                "classification": {"num_replicas": 2},
                "ner": {
                    "autoscaling": True,
                    "min_replicas": 1,
                    "max_replicas": 2,
                    "target_ongoing_requests": 1,
                    "upscale_delay_s": 1,
                    "downscale_delay_s": 3,
                    "look_back_period_s": 2,
                },
            },
        },
        training={"default_batch_size": 8, "worker_resources": {"trainer": 1}},
        tasks=SERVICE_VARIANTS,  # the job's variants verified as the suite's service does
    )


def seed_registry(settings: Settings) -> None:
    """What an operator does once: migrate the schema, register the starter models (to S3)."""
    schema.upgrade(make_engine(settings.registry.database_url, migrate=False, check=False))
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["sentiment", "entities"]):
        register_starter_model(report, settings, registry, store)
    registry.engine.dispose()


def refused_on_sqlite(args: argparse.Namespace, address: str) -> str:
    """The default single-node storage on this cluster: building the app must refuse it."""
    sqlite = Settings(data_dir=args.data_dir / "sqlite", ray={"address": address})
    try:
        build_app(sqlite)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    raise AssertionError("the app was built on SQLite and a local folder on 3 nodes")


def placements(nodes: dict[str, str], head: str) -> dict[str, list[str]] | None:
    """Which node (head, a, b) runs each replica of each task server; None while a replica
    Serve still counts does not answer (it died with its node and is not replaced yet), or
    while this process's router knows of no replica of a task (its only one died)."""
    names = {node_id: name for name, node_id in nodes.items()} | {head: "head"}
    try:
        return {task: sorted(names[r["node_id"]] for r in replicas_of(task)) for task in ROUTES}
    except (ray.exceptions.RayError, DeploymentUnavailableError):
        return None


def fine_tune(client: httpx.Client) -> dict:
    """Upload reviews, train one epoch on Ray Train, return the finished job and its events."""
    rows = "\n".join(json.dumps({"text": t, "label": y}) for t, y in REVIEWS * 10)
    upload = client.post(
        "/v1/files", files={"file": ("reviews.jsonl", rows)}, data={"purpose": "fine-tune"}
    )
    upload.raise_for_status()
    job = client.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": "sentiment",
            "training_file": upload.json()["id"],
            "hyperparameters": {"n_epochs": 1},
            "promotion": {"auto": False},
        },
    ).json()
    until(
        lambda: (
            client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"]
            in {"succeeded", "failed", "cancelled"}
        ),
        600,
        "the fine-tuning job to finish",
    )
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    return client.get(f"/v1/fine_tuning/jobs/{job['id']}").json() | {"events": events}


def promote_under_load(url: str, client: httpx.Client, version: int) -> dict:
    route, body = ROUTES["classification"]
    with Load(url, route, body | {"model": "sentiment"}, threads=4) as load:
        until(lambda: len(load.answers) > 20, 60, "load to start")
        started = time.monotonic()
        swap = client.post("/v1/models/sentiment/promote", json={"version": version})
        swap.raise_for_status()
        until(
            lambda: [v for t, _, v in load.answers[-10:] if t > started] == [version] * 10,
            60,
            "responses to come from the new version",
        )
    return {
        "requests": len(load.answers),
        "failed": load.failed(),
        "seconds": swap.json()["seconds"],
        "resident": {r["node_id"]: r["resident"] for r in replicas_of("classification")},
    }


def every_route_answers(client: httpx.Client) -> bool:
    try:
        return all(
            client.post(route, json=body, timeout=5).status_code == 200
            for route, body in ROUTES.values()
            for _ in range(3)
        )
    except httpx.HTTPError:
        return False


def autoscale(url: str) -> dict:
    """Load on NER until it has 2 replicas, then none until it is back to 1."""
    route, body = ROUTES["ner"]
    with Load(url, route, body, threads=6) as load:
        up_s = until(lambda: running_replicas("ner") == 2, 240, "NER to scale up to 2")
    down_s = until(lambda: running_replicas("ner") == 1, 240, "NER to scale back to 1")
    return {"requests": len(load.answers), "failed": load.failed(), "up_s": up_s, "down_s": down_s}


def lose_node(url: str, client: httpx.Client, cluster: Cluster, node, survivors) -> dict:
    """Kill a worker node's processes mid-load; count the failed requests, time until every
    route answers, and until every replica answers again from a surviving node."""
    route, body = ROUTES["classification"]
    with Load(url, route, body, threads=4) as load:
        until(lambda: len(load.answers) > 20, 60, "load to start")
        killed = time.monotonic()
        cluster.remove_node(node, allow_graceful=False)
        answering_s = until(lambda: every_route_answers(client), 180, "every route to answer")
        restored_s = answering_s + until(
            lambda: survivors() == {"classification": ["a", "a"], "ner": ["a"]},
            180,
            "every replica to answer from node a",
        )
        restored = time.monotonic()
        until(lambda: len([a for a in load.answers if a[0] > restored]) > 20, 60, "more load")
    return {
        "requests": len(load.answers),
        "requests_before_kill": sum(1 for t, _, _ in load.answers if t <= killed),
        "failed": load.failed(),
        "failed_after_restored": load.failed(since=restored),
        "answering_again_s": answering_s,
        "replicas_restored_s": restored_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("data-dir", "zoo-cache", "report", "temp-dir"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    for name in ("database-url", "artifact-url"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    report: dict = {}
    started = time.monotonic()
    cluster, nodes = start_cluster(args.temp_dir)
    try:
        settings = scenario_settings(args, cluster.address, args.port)
        local.connect_ray(settings)
        node_ids = {name: node.node_id for name, node in nodes.items()}
        head = ray.get_runtime_context().get_node_id()
        report["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        report["cluster_start_s"] = time.monotonic() - started
        report["refused_on_sqlite"] = refused_on_sqlite(args, cluster.address)
        seed_registry(settings)
        url = local.deploy(settings)
        with httpx.Client(base_url=url, timeout=60) as client:
            report["ready_s"] = until(
                lambda: client.get("/readyz").status_code == 200, 300, "the app to be ready"
            )
            report["readyz"] = client.get("/readyz").json()
            report["placements"] = placements(node_ids, head)
            job = fine_tune(client)
            ready = next(e for e in job["events"] if e["message"].startswith("workers ready"))
            node_of = {v: k for k, v in node_ids.items()} | {head: "head"}
            report["job"] = {
                "status": job["status"],
                "error": job.get("error"),
                "training_node": node_of.get((ready.get("data") or {}).get("node_id")),
                "candidate_version": (job.get("result") or {}).get("candidate_version"),
            }
            version = report["job"]["candidate_version"]
            registry, _ = connect(settings.registry)
            report["candidate_uri"] = registry.get_version("sentiment", version).artifact_uri
            report["promotion"] = promote_under_load(url, client, version)
            report["autoscaling"] = autoscale(url)
            survivors = functools.partial(placements, node_ids, head)
            report["node_loss"] = lose_node(url, client, cluster, nodes["b"], survivors)
            report["placements_after"] = placements(node_ids, head)
    finally:
        args.report.write_text(json.dumps(report, indent=2, default=str))
        local.stop()
        cluster.shutdown()


if __name__ == "__main__":
    main()
