"""Step load to find capacity: add ``LOAD_STEP_USERS`` users every ``LOAD_STEP_S`` seconds
until the p99 of ``LOAD_P99_OF`` (a request's name; default: all requests) passes
``LOAD_P99_MS``, or ``LOAD_MAX_USERS`` is reached. The capacity is the last step that kept
the p99 under the threshold: its users, requests/s of that request (and tokens/s for chat)
and p99, printed and written to
``LOAD_CAPACITY_JSON`` (default load_tests/results/capacity.json).

Each step is measured over its last 10 s (Locust's window for current percentiles), so a
step should be at least 15 s: the ramp-up and the queue settle in the first seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from locust import LoadTestShape

STEP_USERS = int(os.environ.get("LOAD_STEP_USERS", "2"))
STEP_S = float(os.environ.get("LOAD_STEP_S", "20"))
MAX_USERS = int(os.environ.get("LOAD_MAX_USERS", "64"))
P99_MS = float(os.environ.get("LOAD_P99_MS", "1000"))
P99_OF = os.environ.get("LOAD_P99_OF", "")
REPORT = Path(os.environ.get("LOAD_CAPACITY_JSON", "load_tests/results/capacity.json"))


class StepLoad(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[dict] = []

    def tick(self):
        step = int(self.get_run_time() // STEP_S)
        if step > len(self.steps):  # a step just ended: measure it
            self.steps.append(self._measure(len(self.steps) + 1))
            if self.steps[-1]["p99_ms"] > P99_MS or self.steps[-1]["users"] >= MAX_USERS:
                self._report()
                return None
        users = (len(self.steps) + 1) * STEP_USERS
        return users, STEP_USERS

    def _measure(self, step: int) -> dict:
        stats = self.runner.stats
        entry = next((e for e in stats.entries.values() if e.name == P99_OF), stats.total)
        measured = {
            "step": step,
            "users": step * STEP_USERS,
            "rps": round(entry.current_rps, 2),  # of the measured entry: completions for chat
            "p99_ms": entry.get_current_response_time_percentile(0.99) or 0,
            "p50_ms": entry.get_current_response_time_percentile(0.5) or 0,
            "failures_per_s": round(stats.total.current_fail_per_sec, 2),
        }
        completions = stats.entries.get(("whole completion", "SSE"))
        if completions is not None and completions.num_requests:  # chat: tokens streamed per s
            per_completion = completions.total_content_length / completions.num_requests
            measured["tokens_per_s"] = round(completions.current_rps * per_completion, 1)
        print(f"step {step}: {measured}", flush=True)
        return measured

    def _report(self) -> None:
        kept = []  # the steps before the first that passed the threshold or failed requests
        for step in self.steps:
            if step["p99_ms"] > P99_MS or step["failures_per_s"]:
                break
            kept.append(step)
        capacity = kept[-1] if kept else None
        report = {
            "p99_threshold_ms": P99_MS,
            "p99_of": P99_OF or "all requests",
            "capacity": capacity,
            "steps": self.steps,
        }
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2))
        print(f"capacity: {json.dumps(capacity)} (written to {REPORT})", flush=True)
