"""``/v1/files``: upload (multipart, ``purpose=fine-tune``), list, retrieve, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from tuneserve.api.fine_tuning import FileDeleted, FileList, FilePublic
from tuneserve.api.tasks import ErrorBody
from tuneserve.errors import InvalidRequest, PayloadTooLarge
from tuneserve.registry.jobs import FileInfo
from tuneserve.serving.gateway import GatewayDep
from tuneserve.training.data import parse_training_file, rows_to_jsonl

ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 409, 413, 422)}
router = APIRouter(prefix="/v1/files", tags=["files"], responses=ERRORS)


def public_file(info: FileInfo) -> FilePublic:
    return FilePublic(
        id=info.id,
        bytes=info.bytes,
        created_at=int(info.created_at.timestamp()),
        filename=info.filename,
        purpose=info.purpose,
        task=info.task,
        rows=info.rows,
        sha256=info.sha256,
        labels=info.labels,
    )


@router.post("", response_model=FilePublic)
async def upload_file(
    request: Request,
    gateway: GatewayDep,
    file: Annotated[UploadFile, File(description="JSONL or CSV rows in a task's schema.")],
    purpose: Annotated[str, Form(description="Must be 'fine-tune'.")],
    task: Annotated[str | None, Form(description="Default: inferred from the rows.")] = None,
) -> FilePublic:
    """Validate every row (errors name line and field) and store the file."""
    settings = gateway.settings
    if purpose != "fine-tune":
        raise InvalidRequest(
            f"purpose {purpose!r} is not supported; use 'fine-tune'", param="purpose"
        )
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes + 64 * 1024:  # room for the multipart framing
        raise PayloadTooLarge(
            f"the upload is {declared} bytes; at most {settings.max_upload_bytes}", param="file"
        )
    data = await file.read(settings.max_upload_bytes + 1)
    filename = file.filename or "upload.jsonl"
    parsed = await asyncio.to_thread(
        parse_training_file,
        data,
        filename,
        task=task,
        max_bytes=settings.max_upload_bytes,
        max_rows=settings.max_file_rows,
        max_errors=settings.max_file_errors,
    )

    def store() -> FileInfo:
        uri = gateway.store.put_bytes(
            rows_to_jsonl(parsed.rows), f"files/{parsed.sha256[:16]}/{gateway.new_key()}.jsonl"
        )
        return gateway.jobs.create_file(
            filename=filename,
            purpose=purpose,
            bytes=len(data),
            sha256=parsed.sha256,
            rows=len(parsed.rows),
            task=parsed.task,
            labels=parsed.labels,
            uri=uri,
        )

    return public_file(await asyncio.to_thread(store))


@router.get("", response_model=FileList)
async def list_files(gateway: GatewayDep) -> FileList:
    files = await asyncio.to_thread(gateway.jobs.list_files)
    return FileList(data=[public_file(info) for info in files])


@router.get("/{file_id}", response_model=FilePublic)
async def get_file(file_id: str, gateway: GatewayDep) -> FilePublic:
    return public_file(await asyncio.to_thread(gateway.jobs.get_file, file_id))


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, gateway: GatewayDep) -> FileDeleted:
    """Delete a file; refused (409) while an unfinished job uses it."""
    info = await asyncio.to_thread(gateway.jobs.delete_file, file_id)
    await asyncio.to_thread(gateway.store.delete, info.uri)
    return FileDeleted(id=file_id)
