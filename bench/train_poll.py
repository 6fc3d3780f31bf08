"""Ray Train's controller poll interval: ``python -m bench.train_poll``.

The controller sees a run's end (or a worker's failure) only when it polls its workers:
every 2 s by Ray's default, every ``training.controller_poll_s`` (0.5 s) in tuneserve. This
times a one-worker ``fit`` whose worker only sleeps, at each interval in turn on one local
cluster, from a process that calls ``fit`` as the runner's warm host does (the interval is
read from that process's environment).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from bench.common import console, print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
WORK_S = 3.0  # what the worker does: sleep, so that only Ray Train's own time varies


def sleep_a_while(config: dict) -> None:
    time.sleep(config["work_s"])


@ray.remote(num_cpus=0)
class Caller:
    """A process that calls ``fit`` with the poll interval in its environment."""

    def fit_seconds(self, interval_s: float, storage: str) -> float:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(interval_s)
        trainer = TorchTrainer(
            sleep_a_while,
            train_loop_config={"work_s": WORK_S},
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(storage_path=storage),
        )
        started = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--intervals", type=float, nargs="+", default=[2.0, 0.5])
    args = parser.parse_args()
    (ROOT / ".tuneserve").mkdir(exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir=ROOT / ".tuneserve")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir)
    seconds: dict[float, list[float]] = {interval: [] for interval in args.intervals}
    try:
        for _ in range(args.rounds):  # alternating, so that drift hits every interval alike
            for interval in args.intervals:
                caller = Caller.remote()
                seconds[interval].append(
                    ray.get(caller.fit_seconds.remote(interval, tempfile.mkdtemp()))
                )
                ray.kill(caller)
    finally:
        ray.shutdown()
    print_table(
        f"one-worker fit, the worker sleeping {WORK_S:g} s (seconds)",
        ["poll interval s", "median", "runs"],
        [
            [interval, statistics.median(runs), " / ".join(f"{s:.1f}" for s in runs)]
            for interval, runs in seconds.items()
        ],
    )
    path = write_results("train_poll", {"work_s": WORK_S, "seconds": seconds})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
