"""Per-tenant quotas at their boundary, through the fine-tuning use cases (no Ray).

Unfinished jobs and stored bytes are counted per tenant: exactly the quota passes, one
more is a 429 ``quota_exceeded``; another tenant is not affected; finishing or deleting
gives room back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tuneserve.api.fine_tuning import JobCreate
from tuneserve.control.access import Principal
from tuneserve.control.fine_tuning import FineTuningService
from tuneserve.errors import QuotaExceeded
from tuneserve.registry import connect, weights_sha256
from tuneserve.registry.jobs import JobStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.zoo.recipes import RECIPES

ROWS = "\n".join(
    json.dumps(row) for row in RECIPES["sentiment"].data.generate("train", 8, seed=4)
).encode()
A = Principal("tenant-a", frozenset({"fine_tune"}), "key-a")
B = Principal("tenant-b", frozenset({"fine_tune"}), "key-b")


@pytest.fixture
def service(tmp_path: Path, model_dir: Path) -> FineTuningService:
    settings = Settings(
        data_dir=tmp_path,
        quotas={"max_queued_jobs": 2, "max_stored_bytes": 2 * len(ROWS)},
    )
    registry, store = connect(settings.registry)
    uri = store.put_dir(model_dir, "sentiment/1")
    registry.create_model("sentiment", "classification")
    registry.register_version(
        "sentiment", artifact_uri=uri, sha256=weights_sha256(store.local_path(uri)), metrics={}
    )
    registry.move_alias("sentiment", "production", 1, None)
    yield FineTuningService(settings, registry, store, builtin_catalog(), lambda: None)
    registry.engine.dispose()


def _upload(service: FineTuningService, caller: Principal) -> str:
    return service.upload_file(caller, ROWS, "rows.jsonl", "fine-tune", None).id


def test_stored_bytes_quota_is_per_tenant_and_deleting_gives_room(service):
    first, second = _upload(service, A), _upload(service, A)  # exactly the quota
    with pytest.raises(QuotaExceeded) as refused:
        _upload(service, A)
    assert refused.value.status_code == 429 and refused.value.param == "file"
    _upload(service, B)  # another tenant has its own quota
    service.delete_file(A, first)
    _upload(service, A)
    assert len(service.list_files(A).data) == 2 and second


def test_unfinished_jobs_quota_is_per_tenant_and_finishing_gives_room(service):
    file_a, file_b = _upload(service, A), _upload(service, B)
    body = JobCreate(model="sentiment", training_file=file_a)
    jobs = [service.create_job(A, body) for _ in range(2)]  # exactly the quota
    assert all(job.promotion["auto"] is False for job in jobs)  # not an admin: no auto
    with pytest.raises(QuotaExceeded) as refused:
        service.create_job(A, body)
    assert refused.value.status_code == 429
    service.create_job(B, JobCreate(model="sentiment", training_file=file_b))
    JobStore(service.registry.engine).request_cancel(jobs[0].id)  # not started: cancelled
    service.create_job(A, body)
