"""Field types that read registry records as the public contract spells them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator


def _unix(value: object) -> object:
    return int(value.timestamp()) if isinstance(value, datetime) else value


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


UnixTime = Annotated[int, BeforeValidator(_unix)]  # seconds since the epoch, as OpenAI's
IsoTime = Annotated[str, BeforeValidator(_iso)]
