"""Structured logs: one JSON object per line on stderr, from every tuneserve process.

Ray writes each worker's stderr to ``<ray temp dir>/session_latest/logs/worker-*.err``
(on Kubernetes: the pod's log directory, and ``kubectl logs`` for the head). Request text is
never logged unless the ``log_request_text`` setting turns it on.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FIELDS = (
    "request_id",
    "method",
    "route",
    "model",
    "version",
    "status",
    "latency_ms",
    "job_id",
    "replica",
    "texts",  # only with the log_request_text setting on
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in FIELDS if hasattr(record, key)})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send the ``tuneserve`` loggers' records to stderr as JSON lines (once per process)."""
    logger = logging.getLogger("tuneserve")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
