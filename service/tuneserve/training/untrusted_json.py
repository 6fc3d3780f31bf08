"""JSON from a client's training file, read so that abuse is a row error, never a 500.

Python's ``json`` refuses two kinds of well-formed text with exceptions that are not
``JSONDecodeError``: nesting past the recursion limit (``RecursionError``) and integers past
the digit limit (``ValueError``; parsing them is quadratic). And an integer that parses fine
can still be too large for the rows' Arrow storage (int64), which fails only when written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tuneserve.errors import unreadable_json

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def loads(text: str) -> tuple[Any, str | None]:
    """``text`` parsed, or None and why not, in words for the client."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, f"not valid JSON: {error.msg} at column {error.colno}"
    except (RecursionError, ValueError) as error:
        if (reason := unreadable_json(error)) is None:
            raise
        return None, f"not accepted JSON: {reason}"


def outside_int64(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of the integers in ``value`` that an int64 column cannot hold."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from outside_int64(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from outside_int64(item, f"{path}.{index}")
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        yield path
