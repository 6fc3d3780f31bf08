"""Where the service is and which key to send: arguments first, then the environment."""

from __future__ import annotations

import os

from tuneserve_client import __version__

DEFAULT_URL = "http://127.0.0.1:8000"


def connection_settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL (``TUNESERVE_URL``) and the headers (``TUNESERVE_API_KEY``)."""
    url = (base_url or os.environ.get("TUNESERVE_URL") or DEFAULT_URL).rstrip("/")
    key = api_key or os.environ.get("TUNESERVE_API_KEY")
    headers = {"User-Agent": f"tuneserve-client/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return url, headers
