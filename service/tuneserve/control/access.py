"""Who is calling and what they may do: API keys → a Principal with a tenant and scopes.

Scopes: ``inference`` (task routes, chat), ``fine_tune`` (files and jobs of the key's own
tenant), ``admin`` (everything: every tenant's files and jobs, moving production, keys).
Any valid key may read the model list. In the open mode (a local service with no keys)
every caller is the admin of the ``default`` tenant.

The verifier keeps the active keys in memory and re-reads them at most every ``ttl_s``
(so a revocation takes effect within it; at once on the gateway that revoked it); an
unknown key id triggers at most one extra read per ``min_refresh_s``, so a flood of
made-up keys cannot load the database, and a key made on another gateway works within it.
While the database cannot be read, the keys read last stay in use for up to
``outage_grace_s`` after that read; a key not among them gets 503 (it may be new), not 401.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from dataclasses import dataclass

from tuneserve.errors import Misconfigured, PermissionDenied, Unauthorized, Unavailable
from tuneserve.registry.db import DEFAULT_TENANT
from tuneserve.registry.keys import SCOPES, KeyStore, StoredKey, digest, key_id_of

INFERENCE, FINE_TUNE, ADMIN = SCOPES
ADMIN_TOKEN_TENANT = "admin"  # the tenant of what the bootstrap admin token creates


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None  # None: the admin token, or the open mode

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def require(self, scope: str) -> Principal:
        """This principal, if it holds ``scope`` (admin holds every scope); else 403."""
        if self.is_admin or scope in self.scopes:
            return self
        held = ", ".join(sorted(self.scopes)) or "none"
        raise PermissionDenied(
            f"this route needs an API key with the '{scope}' scope; this key has: {held}",
            param="authorization",
        )

    def owner_filter(self) -> str | None:
        """The tenant whose files and jobs this caller sees; None: every tenant (admin)."""
        return None if self.is_admin else self.tenant


OPEN = Principal(DEFAULT_TENANT, frozenset(SCOPES))


class Authenticator:
    """Turns an ``Authorization`` header (raw bytes, any bytes) into a Principal, or 401."""

    def __init__(
        self,
        keys: KeyStore,
        admin_token: bytes | None,
        ttl_s: float,
        min_refresh_s: float = 0.25,
        outage_grace_s: float = 0.0,
    ):
        self.keys = keys
        self.admin_token = admin_token
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self.outage_grace_s = outage_grace_s
        self._active: dict[str, StoredKey] = {}
        self._read_at = float("-inf")  # the last read, or try while the database was down
        self._read_ok_at = float("-inf")  # the last read that succeeded
        self._stale = False  # the last try failed: ``_active`` is the last good read's
        self._lock = threading.Lock()

    def authenticate(self, header: bytes | None, *, may_read: bool = True) -> Principal | None:
        """The caller named by ``Authorization: Bearer <key>``; 401 for anything else.

        With ``may_read=False`` (on the event loop) None means the answer needs a database
        read: call again in a thread.
        """
        key = _bearer(header)
        if self.admin_token is not None and hmac.compare_digest(key, self.admin_token):
            return Principal(ADMIN_TOKEN_TENANT, frozenset(SCOPES))
        key_id = key_id_of(key)
        if key_id and not may_read and self._must_read(key_id):
            return None
        stored = self._lookup(key_id) if key_id else None
        # compared even when the id is unknown, so both paths cost the same
        expected = stored.secret_sha256 if stored else bytes(32)
        if stored is None and key_id and self._stale:
            raise Unavailable("the API keys cannot be read now (registry database); retry")
        if not hmac.compare_digest(digest(key), expected) or stored is None:
            raise Unauthorized("the API key is not valid (unknown, revoked or mistyped)")
        info = stored.info
        return Principal(info.tenant, frozenset(info.scopes), info.id)

    def forget(self) -> None:
        """Re-read the keys on next use (this gateway just created or revoked one)."""
        with self._lock:
            self._read_at = float("-inf")

    def _must_read(self, key_id: str) -> bool:
        age = time.monotonic() - self._read_at
        return age >= self.ttl_s or (key_id not in self._active and age >= self.min_refresh_s)

    def _lookup(self, key_id: str) -> StoredKey | None:
        with self._lock:
            if self._must_read(key_id):
                self._read_keys()
            return self._active.get(key_id)

    def _read_keys(self) -> None:
        """Re-read the active keys (under ``_lock``); while the database cannot be read,
        keep the last ones read, if that read is within the outage grace."""
        now = time.monotonic()
        try:
            self._active = self.keys.active()
        except Unavailable:
            if now - self._read_ok_at >= self.outage_grace_s:
                raise
            self._read_at, self._stale = now, True
            return
        self._read_at = self._read_ok_at = now
        self._stale = False


def _bearer(header: bytes | None) -> bytes:
    if not header:
        raise Unauthorized("this route needs an API key: send 'Authorization: Bearer <key>'")
    scheme, _, key = header.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return key.strip()


def resolve_mode(mode: str, bind_host: str | None, has_credentials: bool) -> str:
    """'keys' or 'open' for a service binding ``bind_host`` (None: unknown, e.g. a
    RayService, treated as reachable by anyone); refuses what would be unsafe.
    """
    loopback = bind_host is not None and _is_loopback(bind_host)
    if mode == "open" and not loopback:
        raise Misconfigured(
            f"auth.mode 'open' serves without keys, so it is only allowed on a loopback "
            f"address, not {bind_host or 'a cluster address'}; use auth.mode 'keys'",
            param="auth.mode",
        )
    if mode == "auto":
        mode = "keys" if has_credentials or not loopback else "open"
    if mode == "keys" and not has_credentials:
        raise Misconfigured(
            "API keys are required here and none exists: create one with `tuneserve keys "
            "create --tenant ops --scope admin` (same TUNESERVE_REGISTRY__DATABASE_URL) or set "
            "TUNESERVE_ADMIN_TOKEN from a secret",
            param="auth.mode",
        )
    return mode


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
