"""Model references: ``name``, ``name@<version>``, ``name@<alias>``, parsed in one place.

The well-known aliases are spelled here once: ``production`` (what a reference without a
``@`` means) and ``candidate`` (a fine-tuning job's latest result).

A fine-tuning job with a ``suffix`` makes a new model, named ``<base>:<suffix>``
(``sentiment:topics``, then ``sentiment:topics@1``): the colon keeps the family visible
and never meets the ``@`` of a reference. A suffix job from ``sentiment:topics`` makes
``sentiment:<suffix>``, so names stay one level deep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRODUCTION = "production"
CANDIDATE = "candidate"
NAME_PART = r"[a-z0-9_-]+"
MODEL_NAME = re.compile(rf"(?=.{{1,64}}$){NAME_PART}(:{NAME_PART})?")
MODEL_NAME_RULE = "1-64 lowercase letters, digits, '-' or '_' (and one ':' before a suffix)"


def derived_name(base: str, suffix: str) -> str:
    """The new model a suffix job writes to: ``<family>:<suffix>``."""
    return f"{base.partition(':')[0]}:{suffix}"


@dataclass(frozen=True)
class ModelRef:
    """A model name plus either a version number or an alias (``production`` if neither)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, _, ref = text.partition("@")
        return cls.of(name, ref or None)

    @classmethod
    def of(cls, name: str, ref: int | str | None) -> ModelRef:
        """``ref`` None → production; an int or ASCII digits → that version; else an alias.

        Only ASCII digits are a version: ``str.isdigit`` also accepts ``²``, which ``int``
        cannot read.
        """
        if isinstance(ref, int):
            return cls(name, version=ref)
        if ref is None or ref == "":
            return cls(name, alias=PRODUCTION)
        if ref.isascii() and ref.isdigit():
            return cls(name, version=int(ref))
        return cls(name, alias=ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.alias}"
