"""Resident memory of the service's processes, for benchmarks that watch it over time.

Read from /proc (VmRSS) for every Serve replica, the HTTP proxy and the job runner, found in
the GCS actor table; a process that died reads as None, which a report should show.
"""

from __future__ import annotations

from pathlib import Path

MiB = 2**20


def service_processes() -> dict[str, int]:
    """Every Serve replica, the HTTP proxy and the job runner: label → pid.

    From the GCS actor table: the bench starts Ray without the dashboard, which the state
    API (``ray.util.state.list_actors``) needs.
    """
    from ray._private import state

    processes = {}
    for actor in state.actors().values():
        kind = actor["ActorClassName"]
        if actor["State"] != "ALIVE":
            continue
        if kind.startswith("ServeReplica:"):
            label = kind.rsplit(":", 1)[1]
        elif kind in ("ProxyActor", "JobRunner"):
            label = kind
        else:
            continue
        processes[f"{label} ({actor['Pid']})"] = actor["Pid"]
    return processes


def rss(pid: int) -> int | None:
    """Resident bytes of ``pid`` (VmRSS), or None when the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    return next(int(ln.split()[1]) * 1024 for ln in lines if ln.startswith("VmRSS:"))


def memory_growth(before: dict[str, int | None], processes: dict[str, int]) -> dict[str, dict]:
    """Per process sampled at ``before``: MiB then and now, and growth in percent (None for
    a process that died or began since: a restart is a finding of its own)."""
    growth = {}
    for label, start in before.items():
        end = rss(processes[label]) if label in processes else None
        known = start is not None and end is not None
        growth[label] = {
            "start_mib": None if start is None else start / MiB,
            "end_mib": None if end is None else end / MiB,
            "growth_pct": 100 * (end - start) / start if known else None,
        }
    return growth
