"""Stop the whole service mid-job and start it again: state survives, the job says why.

The service runs as a subprocess (``tuneserve run``, as a user starts it) with its own Ray
cluster and temp dir; it is stopped with SIGTERM, as Kubernetes stops a pod.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from tuneserve.zoo.data import sentiment

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    def __init__(self, data_dir: Path, zoo_cache: Path):
        self.port, self.metrics_port = _free_port(), _free_port()
        self.ray_dir = Path(tempfile.mkdtemp(prefix="ray-", dir=ROOT / ".tuneserve"))
        self.env = os.environ | {
            "TUNESERVE_DATA_DIR": str(data_dir),
            "TUNESERVE_ZOO__CACHE_DIR": str(zoo_cache),
            "TUNESERVE_ZOO__PROFILE": "tiny",
            "TUNESERVE_SERVING__PORT": str(self.port),
            "TUNESERVE_RAY__TEMP_DIR": str(self.ray_dir),
            "TUNESERVE_RAY__NUM_CPUS": "3",
            "TUNESERVE_RAY__METRICS_EXPORT_PORT": str(self.metrics_port),
            "TUNESERVE_LIMITS__MAX_SEQUENCE_LENGTH": "128",
            "TUNESERVE_SERVING__TASK_SERVER__NUM_CPUS": "0.1",
            "TUNESERVE_SERVING__SERVED_TASKS": '["classification"]',
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = (data_dir.parent / "service.log").open("ab")

    def start(self) -> None:
        tuneserve = Path(sys.executable).parent / "tuneserve"
        self.process = subprocess.Popen(
            [str(tuneserve), "run"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.flush()
                log = Path(self.log.name).read_text(errors="replace")[-3000:]
                raise AssertionError(f"the service exited while starting:\n{log}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError("the service did not become ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.log.flush()
        log = Path(self.log.name).read_text(errors="replace")[-3000:]
        assert code == 0, f"the service did not stop cleanly (exit {code}):\n{log}"

    def leftovers(self) -> list[str]:
        """Processes of this service's Ray cluster still alive, and who holds its port."""
        table = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        alive = [line for line in table.splitlines() if str(self.ray_dir) in line]
        for port in (self.port, self.metrics_port):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    alive.append(f"something still listens on {port}")
        return alive


@pytest.fixture
def service(tmp_path, zoo_settings, starter_models):
    service = Service(tmp_path / "state", zoo_settings.zoo.cache_dir)
    yield service
    if service.process and service.process.poll() is None:
        service.stop()


def test_state_survives_a_restart_and_the_interrupted_job_is_failed(service):
    service.start()
    with httpx.Client(base_url=service.url, timeout=60) as http:
        rows = "\n".join(json.dumps(r) for r in sentiment.generate("train", 200, seed=3))
        file_id = http.post(
            "/v1/files", files={"file": ("t.jsonl", rows.encode())}, data={"purpose": "fine-tune"}
        ).json()["id"]
        job_id = http.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": "sentiment",
                "training_file": file_id,
                "hyperparameters": {"n_epochs": 50, "batch_size": 4},
            },
        ).json()["id"]
        deadline = time.monotonic() + 180
        while http.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        before = {
            "models": http.get("/v1/models").json(),
            "versions": http.get("/v1/models/sentiment/versions").json(),
        }
    service.stop()
    assert service.leftovers() == []

    service.start()
    with httpx.Client(base_url=service.url, timeout=60) as http:
        job = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "failed" and job["error"]["code"] == "interrupted"
        assert "stopped while this job was running" in job["error"]["message"]
        events = http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()[
            "data"
        ]
        assert any(e["message"] == "status: running" for e in events)
        assert http.get(f"/v1/files/{file_id}").json()["rows"] == 200
        assert http.get("/v1/models").json() == before["models"]
        assert http.get("/v1/models/sentiment/versions").json() == before["versions"]
        served = http.post("/v1/classify", json={"inputs": "Wonderful."}).json()
        assert (
            served["version"] == before["models"]["data"][-1]["aliases"]["production"]
            or served["version"] == 1
        )
    service.stop()
    assert service.leftovers() == []
