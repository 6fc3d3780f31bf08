"""Promotion and rollback over real HTTP, on the session's service (the rules themselves are
tested without Ray in test_promotion_rules.py): the wire shape of each answer."""

from __future__ import annotations

from conftest import production_copy
from tuneserve.registry import connect

COPY = "rollback-sentiment"


def test_promote_and_rollback_answers_over_http(ready_service, http, service_settings):
    production_copy(service_settings, "sentiment", COPY, "classification")
    registry, _ = connect(service_settings.registry)
    first = registry.get_version(COPY, 1)
    registry.register_version(
        COPY, artifact_uri=first.artifact_uri, sha256=first.sha256, metrics=first.metrics
    )
    registry.engine.dispose()

    def post(action: str, **kwargs) -> tuple[int, dict]:
        response = http.post(f"/v1/models/{COPY}/{action}", **kwargs)
        return response.status_code, response.json()

    status, body = post("promote", json={"version": 2})
    assert status == 200, body
    assert (body["from_version"], body["to_version"], body["changed"]) == (1, 2, True)
    status, body = post("promote", json={"version": 2})
    assert status == 200, body
    assert (body["from_version"], body["to_version"], body["changed"]) == (2, 2, False)
    status, body = post("rollback")  # no body, as before
    assert status == 200 and (body["from_version"], body["to_version"]) == (2, 1)
    status, body = post("rollback")
    assert status == 409 and body["error"]["param"] == "version", body
    assert "Name the version" in body["error"]["message"]
    status, body = post("rollback", json={"version": 2})
    assert status == 200 and body["to_version"] == 2 and body["warning"] is None
    status, body = post("rollback", json={"version": 0})
    assert status in (400, 422) and body["error"]["param"] == "version", body
    assert http.get(f"/v1/models/{COPY}").json()["aliases"] == {"production": 2}
