"""A real Prometheus server scrapes the running service with the shipped scrape config.

A second Serve app, 'observed', with its own registry serves classification (2 replicas)
and chat. The test sends known traffic, runs a fine-tuning job that promotes, rolls back,
then asks Prometheus's HTTP API — polling, since Ray pushes metrics on an interval — and
checks the counters, histograms and gauges say exactly what happened.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port, json_log_lines, wait_until_ready
from promql import DASHBOARD, dashboard_queries, runnable
from transformers import AutoTokenizer
from tuneserve.registry import connect
from tuneserve.serving.app import delete_apps, serve_apps
from tuneserve.telemetry import exported_names
from tuneserve.zoo.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
SCRAPE_CONFIG = ROOT / "deployments" / "prometheus" / "prometheus.yml"
APP = "observed"
CLF, CHAT = "obs-sentiment", "obs-chat"
# per-replica series of this deployment only: its gateway and its task applications
OBSERVED = f'application=~"{APP}(-.+)?"'
DEADLINE_S = 60


class Prometheus:
    """Prometheus's query API, with polling for values that arrive on Ray's interval."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} | ({"time": at} if at is not None else {})
        body = self.http.get("/api/v1/query", params=params).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": 1}
        body = self.http.get("/api/v1/query_range", params=params).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def value(self, expr: str, at: float | None = None) -> float | None:
        result = self.query(expr, at)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, expected: float) -> float:
        """Poll until ``expr`` equals ``expected``; the time it did."""
        deadline, seen = time.monotonic() + DEADLINE_S, None
        while time.monotonic() < deadline:
            seen = self.value(expr)
            if seen == pytest.approx(expected):
                return time.time()
            time.sleep(0.5)
        raise AssertionError(
            f"{expr} is {seen}, expected {expected} within {DEADLINE_S} s; {self.diagnosis()}"
        )

    def diagnosis(self) -> str:
        """What a failed wait needs: each target's last scrape, the app's series by name."""
        targets = self.http.get("/api/v1/targets").json()["data"]["activeTargets"]
        scrapes = [
            {k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "lastScrapeDuration")}
            for t in targets
        ]
        names = self.query(f"count by (__name__) ({{{OBSERVED}}})")
        series = {r["metric"].get("__name__"): r["value"][1] for r in names}
        return f"scrapes: {scrapes}; series of the app: {series}"

    def names(self) -> set[str]:
        return set(self.http.get("/api/v1/label/__name__/values").json()["data"])


@pytest.fixture(scope="module")
def observed(service, service_settings, starter_models, tmp_path_factory) -> str:
    """App 'observed' at /observed with its own registry: obs-sentiment and obs-chat."""
    database = tmp_path_factory.mktemp(APP) / "registry.db"
    settings = service_settings.updated(
        auth={"mode": "open"},  # a side app on loopback: no keys
        app_name=APP,
        registry={"database_url": f"sqlite:///{database}"},
        serving={"served_tasks": ["classification", "chat"]},
        tasks={"default_models": {"classification": CLF, "chat": CHAT}},
        training={"check_every_steps": 1},
        telemetry={"log_request_text": True},
    )
    source, _ = connect(service_settings.registry)
    registry, _ = connect(settings.registry)
    for name, starter in ((CLF, "sentiment"), (CHAT, "chat")):
        first = source.get_version(starter, 1)
        registry.create_model(name, starter_models[starter].task, "observed by Prometheus")
        registry.register_version(
            name, artifact_uri=first.artifact_uri, sha256=first.sha256, metrics=first.metrics
        )
        registry.move_alias(name, "production", 1, None)
    source.engine.dispose()
    registry.engine.dispose()
    serve_apps(settings, bind_host="127.0.0.1", prefix=f"/{APP}")
    url = f"{service}/{APP}"
    with httpx.Client(base_url=url, timeout=60) as client:
        wait_until_ready(client)
    yield url
    delete_apps(settings)


@pytest.fixture(scope="module")
def prometheus(service_settings, tmp_path_factory) -> Prometheus:
    """The prometheus binary on a free port with its own data dir, scraping every 3 s."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary: `apt-get install prometheus` (.ci/run does)")
    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    # Ray's agent renders every series it ever saw (it forgets no dead replica's counters):
    # late in the suite, megabytes that take over a second on a busy machine, and a scrape
    # may take no longer than its interval
    config["global"] = {"scrape_interval": "3s", "scrape_timeout": "3s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    replicas_target = f"127.0.0.1:{service_settings.ray.metrics_export_port}"
    jobs["tuneserve-replicas"]["static_configs"] = [{"targets": [replicas_target]}]
    jobs["tuneserve-registry"]["static_configs"] = [
        {"targets": [f"127.0.0.1:{service_settings.serving.port}"]}
    ]
    jobs["tuneserve-registry"]["metrics_path"] = f"/{APP}/metrics"
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/-/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, (folder / "prometheus.log").read_text()
        assert time.monotonic() < deadline, "prometheus did not start"
        time.sleep(0.2)
    yield Prometheus(url)
    process.terminate()
    process.wait(timeout=30)


def _classify(url: str, count: int, seed: int) -> list[dict]:
    """``count`` requests of 1-3 texts from 8 threads; each response with its texts."""
    texts = [row["text"] for row in RECIPES["sentiment"].data.generate("heldout", 3 * count, seed)]
    bodies = [texts[3 * i : 3 * i + 1 + i % 3] for i in range(count)]

    def call(inputs: list[str]) -> dict:
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post("/v1/classify", json={"inputs": inputs})
            assert response.status_code == 200, response.text
            return {"version": response.json()["version"], "texts": inputs}

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(call, bodies))


@pytest.fixture(scope="module")
def scenario(observed, prometheus, http, starter_models, service_settings) -> dict:
    """Known traffic, a job that promotes, a rollback: what happened, to compare with."""
    began = time.time()
    done: list[dict] = _classify(observed, 60, seed=1)
    with httpx.Client(base_url=observed, timeout=120) as client:
        logged = {"request_id": f"logged-{time.time_ns()}", "text": "An operator logs this."}
        response = client.post(
            "/v1/classify",
            json={"inputs": logged["text"]},
            headers={"X-Request-ID": logged["request_id"]},
        )
        done.append({"version": response.json()["version"], "texts": [logged["text"]]})
        # 4xx: an unknown version (404) and bodies that fail the schema (422)
        for body in ({"model": f"{CLF}@99", "inputs": "x"}, {"inputs": 3}, {}):
            assert client.post("/v1/classify", json=body).status_code in (404, 422)
        # a made-up method on a made-up path: neither may become a label value
        assert client.request("PROPFIND", "/coffee-pot-1418").status_code == 404
        chats = []
        for i in range(3):
            message = {"role": "user", "content": f"hello number {i}"}
            # 12 tokens each, whatever the model says: every completion has a decoding speed
            body = {"messages": [message], "max_tokens": 12, "temperature": 0, "ignore_eos": True}
            response = client.post("/v1/chat/completions", json=body)
            chats.append(response.json()["usage"])
            if i == 0:  # traffic over time, as in life: rates need a sample before and after
                chat = f'{{{OBSERVED}, model="{CHAT}"}}'
                prometheus.wait_for(f"sum(tuneserve_time_to_first_token_seconds_count{chat})", 1)
                prometheus.wait_for(f"sum(tuneserve_generation_tokens_per_second_count{chat})", 1)
        rows = RECIPES["sentiment"].data.generate("train", 120, seed=5)
        upload = client.post(
            "/v1/files",
            files={"file": ("train.jsonl", "\n".join(map(json.dumps, rows)).encode())},
            data={"purpose": "fine-tune"},
        )
        assert upload.status_code == 200, upload.text
        job = client.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": CLF,
                "training_file": upload.json()["id"],
                "hyperparameters": {"n_epochs": 3, "batch_size": 8, "seed": 3},
                "promotion": {"auto": False},  # promoted by hand below, whatever it scores
            },
        ).json()
        started = time.time()
        deadline = time.monotonic() + 600
        while (job := client.get(f"/v1/fine_tuning/jobs/{job['id']}").json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.25)
        assert job["status"] == "succeeded", job
        promoted = client.post(
            f"/v1/models/{CLF}/promote", json={"version": job["result"]["candidate_version"]}
        )
        assert promoted.status_code == 200, promoted.text
        promoted_seen = prometheus.wait_for(
            f'tuneserve_model_version_info{{model="{CLF}", alias="production", version="2"}}', 1
        )
        done += _classify(observed, 20, seed=2)
        rollback = client.post(f"/v1/models/{CLF}/rollback")
        assert rollback.status_code == 200, rollback.text
        done += _classify(observed, 10, seed=3)
        versions = client.get(f"/v1/models/{CLF}/versions").json()["data"]
    tokenizer = AutoTokenizer.from_pretrained(service_settings.zoo.dir / "sentiment")
    return {
        "requests": Counter(r["version"] for r in done),
        "items": _count(done, lambda r: len(r["texts"])),
        "tokens": _count(
            done, lambda r: sum(len(tokenizer(text)["input_ids"]) for text in r["texts"])
        ),
        "chats": chats,
        "logged": logged,
        "job": job,
        "versions": {v["version"]: v for v in versions},
        "began": began,
        "started": started,
        "promoted_seen": promoted_seen,
    }


def _count(done: list[dict], amount) -> Counter:
    counts: Counter = Counter()
    for response in done:
        counts[response["version"]] += amount(response)
    return counts


def test_request_counts_summed_over_both_replicas_match_what_was_sent(prometheus, scenario):
    for version, sent in scenario["requests"].items():
        selector = f'{OBSERVED}, model="{CLF}", version="{version}", outcome="ok"'
        prometheus.wait_for(f"sum(tuneserve_inference_requests_total{{{selector}}})", sent)
    per_replica = prometheus.query(
        f'sum by (replica) (tuneserve_inference_requests_total{{{OBSERVED}, model="{CLF}"}})'
    )
    assert len(per_replica) == 2, per_replica  # both classification replicas served


def test_http_counters_and_latency_histogram(prometheus, scenario):
    sent = sum(scenario["requests"].values())
    route = f'{OBSERVED}, route="/v1/classify"'
    prometheus.wait_for(
        f'sum(tuneserve_http_requests_total{{{route}, status_class="2xx", model="{CLF}"}})', sent
    )
    prometheus.wait_for(f'sum(tuneserve_http_requests_total{{{route}, status_class="4xx"}})', 3)
    unmatched = f'{OBSERVED}, route="unmatched", method="other", status_class="4xx"'
    prometheus.wait_for(f"sum(tuneserve_http_requests_total{{{unmatched}}})", 1)
    paths = prometheus.query(f"count by (route) (tuneserve_http_requests_total{{{OBSERVED}}})")
    assert "/coffee-pot-1418" not in {series["metric"]["route"] for series in paths}
    histogram = "tuneserve_http_request_duration_seconds"
    prometheus.wait_for(f"sum({histogram}_count{{{route}}})", sent + 3)
    prometheus.wait_for(f'sum({histogram}_bucket{{{route}, le="+Inf"}})', sent + 3)
    p99 = prometheus.value(
        f"histogram_quantile(0.99, sum by (le) (increase({histogram}_bucket{{{route}}}[10m])))"
    )
    assert p99 is not None and 0 < p99 <= 30


def test_batches_queue_and_tokens_add_up_across_batches_and_replicas(prometheus, scenario):
    for version, requests in scenario["requests"].items():
        selector = f'{OBSERVED}, model="{CLF}", version="{version}"'
        items, tokens = scenario["items"][version], scenario["tokens"][version]
        prometheus.wait_for(f"sum(tuneserve_inference_items_total{{{selector}}})", items)
        prometheus.wait_for(f"sum(tuneserve_queue_duration_seconds_count{{{selector}}})", requests)
        prometheus.wait_for(f"sum(tuneserve_input_tokens_total{{{selector}}})", tokens)
        # bucket counts are exact (Ray approximates only a histogram's _sum)
        batches = prometheus.value(f"sum(tuneserve_batch_size_count{{{selector}}})")
        assert 1 <= batches <= requests, batches  # never more batches than requests
        single = prometheus.value(f'sum(tuneserve_batch_size_bucket{{{selector}, le="1.0"}})')
        assert single <= batches
        largest = prometheus.value(f'sum(tuneserve_batch_size_bucket{{{selector}, le="+Inf"}})')
        assert largest == batches


def test_chat_tokens_and_generation_speed(prometheus, scenario):
    chat = f'{OBSERVED}, model="{CHAT}"'
    prompt = sum(usage["prompt_tokens"] for usage in scenario["chats"])
    completion = sum(usage["completion_tokens"] for usage in scenario["chats"])
    prometheus.wait_for(f"sum(tuneserve_input_tokens_total{{{chat}}})", prompt)
    prometheus.wait_for(f"sum(tuneserve_output_tokens_total{{{chat}}})", completion)
    prometheus.wait_for(f"sum(tuneserve_time_to_first_token_seconds_count{{{chat}}})", 3)
    prometheus.wait_for(f'sum(tuneserve_inference_requests_total{{{chat}, outcome="ok"}})', 3)
    rate = prometheus.value(f"sum(tuneserve_generation_tokens_per_second_sum{{{chat}}})")
    assert rate is not None and rate > 0


def test_the_version_flip_swaps_and_residency_are_visible(prometheus, scenario):
    production = f'tuneserve_model_version_info{{model="{CLF}", alias="production"}}'
    prometheus.wait_for(f'{production.removesuffix("}")}, version="1"}}', 1)  # rolled back
    at_promotion = prometheus.query(production, at=scenario["promoted_seen"])
    assert [r["metric"]["version"] for r in at_promotion] == ["2"]
    seen = prometheus.query_range(production, scenario["started"], time.time())
    assert {r["metric"]["version"] for r in seen} == {"1", "2"}

    swaps = f'model="{CLF}", outcome="ok"'
    prometheus.wait_for(f'sum(tuneserve_swaps_total{{{swaps}, kind="promotion"}})', 1)
    prometheus.wait_for(f'sum(tuneserve_swaps_total{{{swaps}, kind="rollback"}})', 1)
    prometheus.wait_for(f'sum(tuneserve_swap_duration_seconds_count{{model="{CLF}"}})', 2)
    # both versions stay pinned in both replicas; each replica loaded each version once
    resident = f'{OBSERVED}, model="{CLF}"'
    prometheus.wait_for(f"sum(tuneserve_resident_versions{{{resident}}})", 4)
    prometheus.wait_for(f'sum(tuneserve_model_loads_total{{{resident}, outcome="ok"}})', 4)


def test_jobs_training_progress_and_evaluations_come_from_the_registry(prometheus, scenario):
    job = scenario["job"]
    prometheus.wait_for('sum(tuneserve_fine_tuning_jobs{state="succeeded"})', 1)
    prometheus.wait_for('sum(tuneserve_fine_tuning_jobs{state="running"})', 0)
    prometheus.wait_for(
        'sum(tuneserve_fine_tuning_job_duration_seconds_count{state="succeeded"})', 1
    )
    of_job = f'job_id="{job["id"]}"'
    steps = prometheus.value(f"max(max_over_time(tuneserve_fine_tuning_step{{{of_job}}}[30m]))")
    total = prometheus.value(
        f"max(max_over_time(tuneserve_fine_tuning_total_steps{{{of_job}}}[30m]))"
    )
    assert steps is not None and 1 <= steps <= total, (steps, total)
    loss = prometheus.value(
        f"max(max_over_time(tuneserve_fine_tuning_train_loss{{{of_job}}}[30m]))"
    )
    assert loss is not None and loss > 0
    accuracy = scenario["versions"][2]["metrics"]["accuracy"]
    selector = f'model="{CLF}", version="2", metric="accuracy"'
    prometheus.wait_for(f"tuneserve_model_version_evaluation{{{selector}}}", accuracy)


def test_every_catalogued_metric_reaches_prometheus_and_the_dashboard_renders(prometheus, scenario):
    names = prometheus.names()
    assert not [name for name in names if name.startswith("ray_tuneserve_")], "not relabelled"
    assert "ray_serve_num_http_requests_total" in names  # Ray Serve's own series stay
    missing = exported_names() - names
    assert not missing, sorted(missing)
    window = (scenario["began"], time.time())
    dashboard = json.loads(DASHBOARD.read_text())

    def has_numbers(expr: str) -> bool:
        series = prometheus.query_range(runnable(expr), *window)
        return any(value != "NaN" for one in series for _, value in one["values"])

    for panel in dashboard["panels"]:
        targets = [target["expr"] for target in panel.get("targets", [])]
        if targets:  # a panel renders when at least one of its queries has numbers
            assert any(has_numbers(expr) for expr in targets), panel["title"]
    for expr in dashboard_queries({**dashboard, "panels": []}):  # variables, annotations
        assert has_numbers(expr), expr


def test_request_text_is_logged_only_when_the_setting_says_so(scenario, service_settings):
    """'observed' runs with log_request_text on (the main app's test shows it off)."""
    (line,) = json_log_lines(service_settings, scenario["logged"]["request_id"])
    record = json.loads(line)
    assert record["texts"] == [scenario["logged"]["text"]] and record["model"] == CLF
