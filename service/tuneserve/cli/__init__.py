"""``tuneserve`` command line.

Two kinds of command. Those that run or build things here (``run``, ``models build``,
``samples``, ``db``, ``keys``, ``gc``, ``k8s``) read the settings (``TUNESERVE_*``). Those that
use a service (the tasks, ``chat``, ``files``, ``jobs``, the rest of ``models``) speak HTTP
through ``tuneserve-client``, so they work against any deployment: ``--url`` or
``TUNESERVE_URL``, ``--key`` or ``TUNESERVE_API_KEY``.
"""

from tuneserve.cli import jobs, local, models, remote, tasks  # noqa: F401  (they register)
from tuneserve.cli.apps import app

__all__ = ["app"]
