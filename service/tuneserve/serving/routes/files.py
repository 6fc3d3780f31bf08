"""``/v1/files``: upload (multipart, ``purpose=fine-tune``), list, retrieve, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from tuneserve.api.fine_tuning import FileDeleted, FileList, FilePublic
from tuneserve.api.tasks import ErrorBody
from tuneserve.errors import PayloadTooLarge
from tuneserve.serving.deps import FineTuningDep, GatewayDep

ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 409, 413, 422)}
router = APIRouter(prefix="/v1/files", tags=["files"], responses=ERRORS)


@router.post("", response_model=FilePublic)
async def upload_file(
    request: Request,
    fine_tuning: FineTuningDep,
    gateway: GatewayDep,
    file: Annotated[UploadFile, File(description="JSONL or CSV rows in a task's schema.")],
    purpose: Annotated[str, Form(description="Must be 'fine-tune'.")],
    task: Annotated[str | None, Form(description="Default: inferred from the rows.")] = None,
) -> FilePublic:
    """Validate every row (errors name line and field) and store the file."""
    limit = gateway.settings.limits.max_upload_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + 64 * 1024:  # room for the multipart framing
        raise PayloadTooLarge(f"the upload is {declared} bytes; at most {limit}", param="file")
    data = await file.read(limit + 1)
    filename = file.filename or "upload.jsonl"
    return await asyncio.to_thread(fine_tuning.upload_file, data, filename, purpose, task)


@router.get("", response_model=FileList)
async def list_files(fine_tuning: FineTuningDep) -> FileList:
    return await asyncio.to_thread(fine_tuning.list_files)


@router.get("/{file_id}", response_model=FilePublic)
async def get_file(file_id: str, fine_tuning: FineTuningDep) -> FilePublic:
    return await asyncio.to_thread(fine_tuning.get_file, file_id)


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, fine_tuning: FineTuningDep) -> FileDeleted:
    """Delete a file; refused (409) while an unfinished job uses it."""
    return await asyncio.to_thread(fine_tuning.delete_file, file_id)
