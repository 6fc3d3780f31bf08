"""Every route as a ``Call``: what to send and how to read the answer.

Built once here and sent by either client (``Client`` blocks, ``AsyncClient`` awaits), so
the two cannot drift apart; a call says whether repeating it is harmless, which decides
whether a broken connection is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from tuneserve_client import models as m

T = TypeVar("T")
FileInput = str | Path | bytes | IO[bytes]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    # repeating it changes nothing (reads, inference): safe to resend after a broken link
    idempotent: bool = False
    # statuses that are answers, not errors (readiness answers 503 with its body)
    ok_statuses: frozenset[int] = field(default_factory=lambda: frozenset({200, 201}))


def _body(**fields: Any) -> dict[str, Any]:
    """The JSON body without the fields left out (None): the service's defaults apply."""
    return {key: _plain(value) for key, value in fields.items() if value is not None}


def _plain(value: Any) -> Any:
    """Models as JSON data, so callers may pass the generated request models or dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _texts(inputs: str | Sequence[str]) -> str | list[str]:
    return inputs if isinstance(inputs, str) else list(inputs)


def _read(file: FileInput, filename: str | None) -> tuple[str, bytes]:
    """The upload's name and bytes, read once so that a retried upload sends them again."""
    if isinstance(file, str | Path):
        path = Path(file)
        return filename or path.name, path.read_bytes()
    if isinstance(file, bytes):
        return filename or "upload.jsonl", file
    return filename or Path(getattr(file, "name", "upload.jsonl")).name, file.read()


# --- health ------------------------------------------------------------------------------
def health() -> Call[dict]:
    return Call("GET", "/healthz", dict, idempotent=True)


def ready() -> Call[dict]:
    return Call("GET", "/readyz", dict, idempotent=True, ok_statuses=frozenset({200, 503}))


# --- tasks -------------------------------------------------------------------------------
def classify(
    inputs: str | Sequence[str], model: str | None, top_k: int | None, variant: str | None
) -> Call[m.ClassifyResponse]:
    body = _body(inputs=_texts(inputs), model=model, top_k=top_k, variant=variant)
    return Call("POST", "/v1/classify", m.ClassifyResponse.model_validate, body, idempotent=True)


def ner(inputs: str | Sequence[str], model: str | None, variant: str | None) -> Call[m.NerResponse]:
    body = _body(inputs=_texts(inputs), model=model, variant=variant)
    return Call("POST", "/v1/ner", m.NerResponse.model_validate, body, idempotent=True)


def qa(
    question: str | None,
    context: str | None,
    inputs: Sequence[m.QaItem | Mapping[str, str]] | None,
    model: str | None,
    variant: str | None,
) -> Call[m.QaResponse]:
    body = _body(question=question, context=context, inputs=inputs, model=model, variant=variant)
    return Call("POST", "/v1/qa", m.QaResponse.model_validate, body, idempotent=True)


def translate(
    inputs: str | Sequence[str], model: str | None, max_new_tokens: int | None
) -> Call[m.TranslateResponse]:
    body = _body(inputs=_texts(inputs), model=model, max_new_tokens=max_new_tokens)
    return Call("POST", "/v1/translate", m.TranslateResponse.model_validate, body, idempotent=True)


def chat_completion(body: dict[str, Any]) -> Call[m.ChatCompletion]:
    """Not idempotent: a resent completion generates (and bills) again."""
    return Call("POST", "/v1/chat/completions", m.ChatCompletion.model_validate, body)


def chat_body(messages: Sequence[m.ChatMessage | Mapping[str, str]], **fields: Any) -> dict:
    return _body(messages=list(messages), **fields)


# --- models ------------------------------------------------------------------------------
def models_list() -> Call[m.ModelList]:
    return Call("GET", "/v1/models", m.ModelList.model_validate, idempotent=True)


def models_get(name: str) -> Call[m.ModelPublic]:
    return Call("GET", f"/v1/models/{name}", m.ModelPublic.model_validate, idempotent=True)


def models_versions(name: str) -> Call[m.VersionList]:
    path = f"/v1/models/{name}/versions"
    return Call("GET", path, m.VersionList.model_validate, idempotent=True)


def models_promote(name: str, version: int, expected_from: int | None) -> Call[m.AliasMovePublic]:
    body = _body(version=version, expected_from=expected_from)
    return Call("POST", f"/v1/models/{name}/promote", m.AliasMovePublic.model_validate, body)


def models_rollback(name: str, version: int | None) -> Call[m.AliasMovePublic]:
    body = _body(version=version)
    return Call("POST", f"/v1/models/{name}/rollback", m.AliasMovePublic.model_validate, body)


def models_import(
    source: str, name: str, task: str | None, alias: str | None, description: str | None
) -> Call[m.ImportedModel]:
    body = _body(source=source, name=name, task=task, alias=alias, description=description)
    return Call("POST", "/v1/models", m.ImportedModel.model_validate, body)


def models_merge(name: str, version: int) -> Call[m.VersionPublic]:
    path = f"/v1/models/{name}/versions/{version}/merge"
    return Call("POST", path, m.VersionPublic.model_validate)


# --- files -------------------------------------------------------------------------------
def files_create(
    file: FileInput, purpose: str, task: str | None, filename: str | None
) -> Call[m.FilePublic]:
    name, content = _read(file, filename)
    form = _body(purpose=purpose, task=task)
    files = {"file": (name, content, "application/octet-stream")}
    return Call("POST", "/v1/files", m.FilePublic.model_validate, files=files, data=form)


def files_list() -> Call[m.FileList]:
    return Call("GET", "/v1/files", m.FileList.model_validate, idempotent=True)


def files_get(file_id: str) -> Call[m.FilePublic]:
    return Call("GET", f"/v1/files/{file_id}", m.FilePublic.model_validate, idempotent=True)


def files_delete(file_id: str) -> Call[m.FileDeleted]:
    path = f"/v1/files/{file_id}"
    return Call("DELETE", path, m.FileDeleted.model_validate, idempotent=True)


# --- fine-tuning jobs --------------------------------------------------------------------
JOBS = "/v1/fine_tuning/jobs"


def jobs_create(body: dict[str, Any]) -> Call[m.JobPublic]:
    return Call("POST", JOBS, m.JobPublic.model_validate, body)


def jobs_body(model: str, training_file: str, **fields: Any) -> dict[str, Any]:
    return _body(model=model, training_file=training_file, **fields)


def jobs_list(after: str | None, limit: int | None) -> Call[m.JobList]:
    params = _body(after=after, limit=limit)
    return Call("GET", JOBS, m.JobList.model_validate, params=params, idempotent=True)


def jobs_get(job_id: str) -> Call[m.JobPublic]:
    return Call("GET", f"{JOBS}/{job_id}", m.JobPublic.model_validate, idempotent=True)


def jobs_cancel(job_id: str) -> Call[m.JobPublic]:
    """Idempotent: cancelling a cancelled (or cancelling) job answers its state again."""
    path = f"{JOBS}/{job_id}/cancel"
    return Call("POST", path, m.JobPublic.model_validate, idempotent=True)


def jobs_events(job_id: str, after: str | None, limit: int | None) -> Call[m.EventList]:
    params = _body(after=after, limit=limit)
    path = f"{JOBS}/{job_id}/events"
    return Call("GET", path, m.EventList.model_validate, params=params, idempotent=True)


def jobs_checkpoints(job_id: str) -> Call[m.CheckpointList]:
    path = f"{JOBS}/{job_id}/checkpoints"
    return Call("GET", path, m.CheckpointList.model_validate, idempotent=True)


# --- API keys (admin) --------------------------------------------------------------------
def keys_create(tenant: str, scopes: Sequence[str], name: str | None) -> Call[m.KeyCreated]:
    body = _body(tenant=tenant, scopes=list(scopes), name=name)
    return Call("POST", "/v1/admin/keys", m.KeyCreated.model_validate, body)


def keys_list() -> Call[m.KeyList]:
    return Call("GET", "/v1/admin/keys", m.KeyList.model_validate, idempotent=True)


def keys_revoke(key_id: str) -> Call[m.KeyPublic]:
    return Call("DELETE", f"/v1/admin/keys/{key_id}", m.KeyPublic.model_validate, idempotent=True)
