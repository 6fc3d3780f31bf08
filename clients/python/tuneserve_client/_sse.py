"""Server-sent events of a streamed chat completion, read line by line."""

from __future__ import annotations

import json

import httpx

from tuneserve_client.errors import StreamError
from tuneserve_client.models import ChatCompletionChunk

DONE = "[DONE]"


def chunk_of(line: str, response: httpx.Response) -> ChatCompletionChunk | str | None:
    """The chunk a ``data:`` line carries, ``DONE`` at the end, None for any other line
    (blank separators, comments); an error event raises ``StreamError``."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == DONE:
        return DONE
    event = json.loads(payload)
    if "error" in event:
        raise StreamError(response, event)
    return ChatCompletionChunk.model_validate(event)
