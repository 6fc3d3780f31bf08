"""A process's peak memory during a scenario: the kernel's own high-water mark (VmHWM in
/proc/<pid>/status), reset to the current size before the scenario (``clear_refs``), so no
spike between samples is missed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lazy_bodies import MiB

GROWTH_BOUND = 300 * MiB  # over its size before the scenario, per process


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


class PeakMemory:
    """Per process: resident size now, and the kernel's high-water mark reset to it."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.before = {name: _status(pid, "VmRSS") for name, pid in pids.items()}
        for pid in pids.values():
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak := current

    def check(self, scenario: str) -> None:
        for name, pid in self.pids.items():
            peak, before = _status(pid, "VmHWM"), self.before[name]
            print(f"{scenario}: {name} peak RSS {peak / MiB:.0f} MiB, +{(peak - before) / MiB:.0f}")
            assert peak - before < GROWTH_BOUND, f"{name} grew {(peak - before) / MiB:.0f} MiB"


def actor_pids(label: str, is_class: Callable[[str], bool]) -> dict[str, int]:
    """``{"<label> <pid>": pid}`` of the live actors whose class name ``is_class`` accepts,
    from the GCS actor table (which has each actor's pid)."""
    from ray._private import state

    alive = [a for a in state.actors().values() if a["State"] == "ALIVE"]
    return {f"{label} {a['Pid']}": a["Pid"] for a in alive if is_class(a["ActorClassName"])}
