"""Steady load: ``LOAD_USERS`` users (spawned at ``LOAD_SPAWN_RATE``/s) for ``LOAD_TIME_S``."""

from __future__ import annotations

import os

from locust import LoadTestShape


class SteadyLoad(LoadTestShape):
    users = int(os.environ.get("LOAD_USERS", "8"))
    spawn_rate = float(os.environ.get("LOAD_SPAWN_RATE", "4"))
    seconds = float(os.environ.get("LOAD_TIME_S", "60"))

    def tick(self):
        if self.get_run_time() >= self.seconds:
            return None
        return self.users, self.spawn_rate
