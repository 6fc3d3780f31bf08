"""A spike: ``LOAD_USERS`` users, then ``LOAD_SPIKE_USERS`` for ``LOAD_SPIKE_S`` seconds, then
back: does the service shed load cleanly (503 with Retry-After, no 500) and recover?"""

from __future__ import annotations

import os

from locust import LoadTestShape


class SpikeLoad(LoadTestShape):
    users = int(os.environ.get("LOAD_USERS", "4"))
    spike_users = int(os.environ.get("LOAD_SPIKE_USERS", "32"))
    before_s = float(os.environ.get("LOAD_BEFORE_S", "20"))
    spike_s = float(os.environ.get("LOAD_SPIKE_S", "20"))
    after_s = float(os.environ.get("LOAD_AFTER_S", "20"))

    def tick(self):
        run_time = self.get_run_time()
        if run_time < self.before_s:
            return self.users, self.users
        if run_time < self.before_s + self.spike_s:
            return self.spike_users, self.spike_users  # all at once: that is a spike
        if run_time < self.before_s + self.spike_s + self.after_s:
            return self.users, self.spike_users
        return None
