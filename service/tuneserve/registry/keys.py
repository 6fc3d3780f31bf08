"""API keys: create (the secret is returned once), list, revoke, and look up by id.

A key is ``tsk_<24 hex id>_<secret>``. Only the SHA-256 of the whole key is stored: the
secret is 256 random bits, so a fast hash is enough (no password stretching needed), and
a leaked database gives no usable key. The id in the key lets the verifier find the one
row to compare with, in constant time, instead of looking a secret up in an index.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tuneserve.errors import Conflict, InvalidRequest, NotFound
from tuneserve.registry.db import READ_ONLY, ApiKeyRow, utcnow

SCOPES = ("inference", "fine_tune", "admin")
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
KEY_FORMAT = re.compile(rb"tsk_([0-9a-f]{24})_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret."""

    id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class StoredKey:
    """A key as the verifier needs it: its record and the digest of the secret."""

    info: KeyInfo
    secret_sha256: bytes


def digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def key_id_of(key: bytes) -> str | None:
    """The id inside a well-formed key, or None for anything else (any bytes at all)."""
    match = KEY_FORMAT.fullmatch(key)
    return f"key-{match.group(1).decode()}" if match else None


class KeyStore:
    """The ``api_keys`` table over the registry's engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction; ``write=False`` for reads, which on SQLite then never queue
        behind a writer: the gateway re-reads the keys on its requests' path."""
        options = {} if write else {READ_ONLY: True}
        with (
            Session(self.engine, expire_on_commit=False, execution_options=options) as session,
            session.begin(),
        ):
            yield session

    def create(self, tenant: str, scopes: list[str], name: str = "") -> tuple[KeyInfo, str]:
        """A new key of ``tenant`` with ``scopes``; the key itself is returned only here."""
        if not TENANT_NAME.fullmatch(tenant):
            raise InvalidRequest(
                f"invalid tenant {tenant!r}: use 1-64 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit",
                param="tenant",
            )
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidRequest(
                f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {scopes}",
                param="scopes",
            )
        hex_id = secrets.token_hex(12)
        key = f"tsk_{hex_id}_{secrets.token_urlsafe(32)}"
        row = ApiKeyRow(
            id=f"key-{hex_id}",
            tenant=tenant,
            name=name,
            scopes=sorted(set(scopes), key=SCOPES.index),
            secret_sha256=digest(key.encode()),
        )
        with self._transaction() as session:
            session.add(row)
        return _info(row), key

    def list(self, tenant: str | None = None) -> list[KeyInfo]:
        """Every key (of one tenant), oldest first, revoked ones included."""
        with self._transaction(write=False) as session:
            query = select(ApiKeyRow).order_by(ApiKeyRow.seq)
            if tenant is not None:
                query = query.where(ApiKeyRow.tenant == tenant)
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key for good; revoking it again is a Conflict."""
        with self._transaction() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.id == key_id))
            if row is None:
                raise NotFound(f"no API key {key_id!r}", param="key_id")
            if row.revoked_at is not None:
                raise Conflict(f"API key {key_id} is already revoked", param="key_id")
            row.revoked_at = utcnow()
            return _info(row)

    def active(self) -> dict[str, StoredKey]:
        """Every key not revoked, by id: what a verifier keeps in memory."""
        with self._transaction(write=False) as session:
            rows = session.scalars(select(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None)))
            return {row.id: StoredKey(_info(row), row.secret_sha256) for row in rows}


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
