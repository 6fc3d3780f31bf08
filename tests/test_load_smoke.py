"""load_tests/: a 20-second headless Locust run of every user class, the swap user
promoting and rolling back under it, with zero failures in Locust's own statistics."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from conftest import ROOT, production_copy
from tuneserve.registry import connect

LOCUST = ROOT / ".venv" / "bin" / "locust"


def swappable_copy(settings) -> str:
    """A copy of sentiment with a second version (the same weights) to promote and roll back:
    the swaps move its production while the classification users call it."""
    model = production_copy(settings, "sentiment", "load-sentiment", "classification")
    registry, _ = connect(settings.registry)
    if len(registry.list_versions(model)) == 1:
        first = registry.get_version(model, 1)
        registry.register_version(
            model, artifact_uri=first.artifact_uri, sha256=first.sha256, metrics=first.metrics
        )
    registry.engine.dispose()
    return model


def test_a_short_mixed_load_with_swaps_has_no_failure(
    ready_service, admin_key, http, tmp_path, service_settings
):
    model = swappable_copy(service_settings)
    before = http.get(f"/v1/models/{model}").json()["aliases"]
    environment = os.environ | {
        "TUNESERVE_API_KEY": admin_key,
        "LOAD_SWAP_EVERY_S": "4",
        "LOAD_CLASSIFY_MODEL": model,
    }
    locust = [
        str(LOCUST if LOCUST.exists() else f"{sys.prefix}/bin/locust"),
        "-f", str(ROOT / "load_tests" / "locustfile.py"),
        "--headless", "--users", "8", "--spawn-rate", "8", "--run-time", "20s",
        "--host", ready_service, "--csv", str(tmp_path / "smoke"), "--only-summary",
    ]  # fmt: skip
    done = subprocess.run(locust, env=environment, capture_output=True, text=True, timeout=180)
    with open(tmp_path / "smoke_stats.csv") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert rows["Aggregated"]["Failure Count"] == "0", rows["Aggregated"]
    for name in ("/v1/classify", "/v1/ner", "/v1/qa", "/v1/translate", "/v1/chat (stream)"):
        assert int(rows[name]["Request Count"]) > 0, name
    assert int(rows["time to first token"]["Request Count"]) > 0
    swaps = [int(rows[name]["Request Count"]) for name in ("promote", "rollback")]
    assert min(swaps) >= 2
    # the swap user left production as it found it
    assert http.get(f"/v1/models/{model}").json()["aliases"] == before
