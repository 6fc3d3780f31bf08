"""API keys, scopes and the access mode, without Ray: the store, the verifier, the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from tuneserve.control.access import OPEN, Authenticator, Principal, resolve_mode
from tuneserve.errors import Conflict, InvalidRequest, Misconfigured, PermissionDenied, Unauthorized
from tuneserve.registry import Registry
from tuneserve.registry.keys import KeyStore
from tuneserve.serving.app import build_app, with_access_mode
from tuneserve.settings import Settings


@pytest.fixture
def keys(db_url: str) -> KeyStore:
    registry = Registry.from_url(db_url)
    yield KeyStore(registry.engine)
    registry.engine.dispose()


def _reads(store: KeyStore) -> list[str]:
    """Every SELECT the store's engine runs from now on."""
    seen: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def record(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            seen.append(statement)

    return seen


def test_keys_are_created_listed_and_revoked_and_only_their_hash_is_kept(keys: KeyStore):
    info, key = keys.create("acme", ["fine_tune", "inference"], "ci")
    assert key.startswith("tsk_") and info.id.startswith("key-") and info.id[4:] in key
    assert info.scopes == ("inference", "fine_tune") and info.tenant == "acme"
    with keys.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT secret_sha256 FROM api_keys").scalar_one()
    assert key.encode() not in bytes(stored) and len(bytes(stored)) == 32
    assert [k.id for k in keys.list()] == [info.id] and keys.list("other") == []
    assert keys.revoke(info.id).revoked_at is not None
    with pytest.raises(Conflict):
        keys.revoke(info.id)
    assert keys.active() == {}


@pytest.mark.parametrize(
    ("tenant", "scopes"),
    [
        ("Acme", ["inference"]),
        ("", ["inference"]),
        ("a" * 65, ["admin"]),
        ("acme", []),
        ("acme", ["root"]),
    ],
)
def test_bad_tenants_and_scopes_are_refused(keys: KeyStore, tenant: str, scopes: list[str]):
    with pytest.raises(InvalidRequest):
        keys.create(tenant, scopes)


def test_the_verifier_accepts_exactly_the_key_and_401s_anything_else(keys: KeyStore):
    info, key = keys.create("acme", ["inference"])
    auth = Authenticator(keys, admin_token=b"bootstrap-secret", ttl_s=60)
    principal = auth.authenticate(f"Bearer {key}".encode())
    assert principal == Principal("acme", frozenset({"inference"}), info.id)
    assert auth.authenticate(f"bearer   {key}  ".encode()) == principal  # scheme, spaces
    admin = auth.authenticate(b"Bearer bootstrap-secret")
    assert admin.is_admin and admin.key_id is None
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for header in (
        None,
        b"",
        key.encode(),  # no scheme
        b"Basic " + key.encode(),
        b"Bearer ",
        f"Bearer {tampered}".encode(),
        b"Bearer tsk_" + b"0" * 24 + b"_" + b"x" * 43,  # well-formed, unknown id
        "Bearer clé-été-ünïcødé".encode("latin-1"),  # non-ASCII bytes: 401, not a crash
        "Bearer 鍵".encode(),
        b"Bearer \xff\xfe\x00",
    ):
        with pytest.raises(Unauthorized):
            auth.authenticate(header)


def test_a_revoked_key_stops_working_within_the_ttl(keys: KeyStore):
    info, key = keys.create("acme", ["inference"])
    header = f"Bearer {key}".encode()
    auth = Authenticator(keys, admin_token=None, ttl_s=0.05)
    assert auth.authenticate(header).tenant == "acme"
    keys.revoke(info.id)
    # the cached copy may answer until the ttl passes; then the key is refused for good
    with pytest.raises(Unauthorized):
        for _ in range(10_000):
            auth.authenticate(header)
            auth._read_at -= 0.01  # age the copy instead of sleeping


def test_a_flood_of_unknown_keys_reads_the_database_once_per_refresh(keys: KeyStore):
    _, key = keys.create("acme", ["inference"])
    auth = Authenticator(keys, admin_token=None, ttl_s=60, min_refresh_s=60)
    assert auth.authenticate(f"Bearer {key}".encode()).tenant == "acme"
    reads = _reads(keys)
    for index in range(500):
        with pytest.raises(Unauthorized):
            auth.authenticate(f"Bearer tsk_{index:024x}_{'y' * 43}".encode())
    assert len(reads) == 0  # the first key's read is recent: no refresh for made-up ids


def test_a_new_key_works_at_once_and_on_the_event_loop_needs_no_read(keys: KeyStore):
    auth = Authenticator(keys, admin_token=None, ttl_s=60, min_refresh_s=0)
    _, first = keys.create("acme", ["inference"])
    assert auth.authenticate(f"Bearer {first}".encode(), may_read=False) is None  # not read
    assert auth.authenticate(f"Bearer {first}".encode()).tenant == "acme"
    assert auth.authenticate(f"Bearer {first}".encode(), may_read=False).tenant == "acme"
    _, second = keys.create("beta", ["fine_tune"])  # unknown id: one read, then known
    assert auth.authenticate(f"Bearer {second}".encode()).tenant == "beta"


def test_scopes_admin_holds_every_scope_and_sees_every_tenant():
    inference = Principal("acme", frozenset({"inference"}), "key-1")
    assert inference.require("inference") is inference
    with pytest.raises(PermissionDenied, match="'fine_tune' scope"):
        inference.require("fine_tune")
    assert inference.owner_filter() == "acme"
    admin = Principal("ops", frozenset({"admin"}), "key-2")
    assert admin.require("fine_tune") is admin and admin.owner_filter() is None
    assert OPEN.is_admin and OPEN.tenant == "default"


@pytest.mark.parametrize(
    ("mode", "host", "credentials", "expected"),
    [
        ("auto", "127.0.0.1", False, "open"),
        ("auto", "::1", False, "open"),
        ("auto", "localhost", False, "open"),
        ("auto", "127.0.0.1", True, "keys"),
        ("auto", "0.0.0.0", True, "keys"),
        ("auto", None, True, "keys"),  # a Serve config / RayService: reachable by anyone
        ("keys", "127.0.0.1", True, "keys"),
        ("open", "127.0.0.1", True, "open"),
        ("auto", "0.0.0.0", False, Misconfigured),
        ("auto", "10.1.2.3", False, Misconfigured),
        ("auto", "myhost", False, Misconfigured),
        ("auto", None, False, Misconfigured),
        ("keys", "127.0.0.1", False, Misconfigured),
        ("open", "0.0.0.0", True, Misconfigured),
        ("open", None, False, Misconfigured),
    ],
)
def test_the_access_mode_runs_open_only_on_loopback(mode, host, credentials, expected):
    if expected is Misconfigured:
        with pytest.raises(Misconfigured):
            resolve_mode(mode, host, credentials)
    else:
        assert resolve_mode(mode, host, credentials) == expected


def test_the_app_refuses_to_start_reachable_without_keys_and_opens_on_loopback(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(Misconfigured, match="tuneserve keys create"):
        build_app(settings)  # a Serve config: the bind address is not known
    with pytest.raises(Misconfigured):
        build_app(settings.updated(serving={"host": "0.0.0.0"}), bind_host="0.0.0.0")
    assert with_access_mode(settings, "127.0.0.1").auth.mode == "open"
    token = settings.updated(admin_token="from-a-secret")
    assert with_access_mode(token, "0.0.0.0").auth.mode == "keys"
    registry = Registry.from_url(settings.registry.database_url)
    KeyStore(registry.engine).create("ops", ["admin"])
    registry.engine.dispose()
    assert with_access_mode(settings, "127.0.0.1").auth.mode == "keys"  # a key exists now
    build_app(settings, bind_host="0.0.0.0")


def test_a_serve_config_runs_open_only_when_it_states_a_loopback_host(tmp_path: Path):
    """`serve run config.yaml` / a RayService: the default host proves nothing."""
    from tuneserve.serving.app import app_builder

    with pytest.raises(Misconfigured):
        app_builder({"data_dir": str(tmp_path)})
    with pytest.raises(Misconfigured):
        app_builder({"data_dir": str(tmp_path), "serving": {"host": "0.0.0.0"}})
    app_builder({"data_dir": str(tmp_path), "serving": {"host": "127.0.0.1"}})
