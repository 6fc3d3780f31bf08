"""Training-data memory benchmark: ``python -m bench.data_memory`` (part of ``make bench``).

A classification file of N rows (1,000,000 by default; generated, nothing downloaded) goes
from upload to model features two ways, each in its own process so that its peak resident
memory is its own:

- ``lists``: the naive path (and tuneserve's before step 5): the rows as Python dicts,
  validated into row objects, tokenized into one list of features;
- ``arrow``: tuneserve's path: rows validated as they stream into an Arrow file, then read
  memory-mapped by ``datasets`` and tokenized in batches into a cached Arrow file;
- ``arrow, cached``: the same again, as a restarted worker sees it (features read back).

A process that only loads the model is the floor every path shares. Prints a table of peak
RSS and seconds and writes ``bench/results/data_memory-*.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import console, print_table, write_results

WORDS = [
    "good",
    "bad",
    "fine",
    "dull",
    "great",
    "awful",
    "moving",
    "flat",
    "sharp",
    "clumsy",
    "warm",
    "cold",
]
PATHS = ("floor", "lists", "arrow", "arrow, cached")


def write_file(path: Path, rows: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(rows):
            words = " ".join(rng.choices(WORDS, k=8))
            label = "positive" if i % 2 else "negative"
            out.write(json.dumps({"text": f"Review {i}: {words}.", "label": label}) + "\n")


def _handler():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from tuneserve.settings import ZooSettings
    from tuneserve.tasks.handlers.classification import ClassificationHandler

    base = ZooSettings().resolved_encoder_base()
    labels = {0: "negative", 1: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    return ClassificationHandler(model, AutoTokenizer.from_pretrained(base), max_length=128)


def run_path(path: str, data_file: Path, work: Path) -> dict:
    """One path, in this process; its peak RSS and wall time."""
    handler = _handler()
    started = time.perf_counter()
    if path == "lists":
        from tuneserve.tasks.classification import ClassificationRow

        rows = [json.loads(line) for line in data_file.read_text().splitlines()]
        valid = [ClassificationRow.model_validate(row) for row in rows]
        count = len(handler.training_features(valid))
    elif path.startswith("arrow"):
        from tuneserve.tasks.catalog import builtin_catalog
        from tuneserve.training.data import parse_training_file
        from tuneserve.training.dataset import ArrowRowWriter
        from tuneserve.training.features import open_rows, tokenized

        spec = builtin_catalog().get("classification")
        rows_file = work / "rows.arrow"
        if not rows_file.exists():
            data = data_file.read_bytes()
            with ArrowRowWriter(rows_file) as sink:
                parse_training_file(
                    data, "rows.jsonl", builtin_catalog(), sink, max_bytes=2**40, max_rows=2**40
                )
            del data

        def featurize(batch: list[dict]) -> list[dict]:
            return handler.training_features([spec.Row(**row) for row in batch])

        count = len(tokenized(open_rows(rows_file), featurize, work / "features", "bench"))
    else:
        count = 0
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"path": path, "features": count, "seconds": seconds, "peak_rss_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--one", nargs=3, metavar=("PATH", "FILE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        path, data_file, work = args.one
        print(json.dumps(run_path(path, Path(data_file), Path(work))))
        return
    with tempfile.TemporaryDirectory() as folder:
        data_file = Path(folder) / "rows.jsonl"
        write_file(data_file, args.rows)
        size = data_file.stat().st_size
        console.print(f"{args.rows} classification rows, {size / 2**20:.0f} MiB of JSONL")
        results = []
        for path in PATHS:
            command = [sys.executable, "-m", "bench.data_memory", "--one", path]
            out = subprocess.run([*command, str(data_file), folder], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{path} failed:\n{out.stderr[-3000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    floor = results[0]["peak_rss_mib"]
    print_table(
        f"{args.rows} rows: upload → features, peak memory per process",
        ["path", "features", "seconds", "peak RSS MiB", "above the floor MiB"],
        [
            [r["path"], r["features"], r["seconds"], r["peak_rss_mib"], r["peak_rss_mib"] - floor]
            for r in results
        ],
    )
    path = write_results("data_memory", {"rows": args.rows, "jsonl_bytes": size, "runs": results})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
