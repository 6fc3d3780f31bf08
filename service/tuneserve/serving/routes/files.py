"""``/v1/files``: upload (multipart, ``purpose=fine-tune``), list, retrieve, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from tuneserve.api.fine_tuning import FileDeleted, FileList, FilePublic
from tuneserve.api.tasks import ErrorBody
from tuneserve.errors import PayloadTooLarge
from tuneserve.serving.deps import FineTuneCaller, FineTuningDep, GatewayDep

# 503: every upload slot is taken (limits.max_concurrent_uploads), or the registry database
# is unreachable or busy
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)}
router = APIRouter(prefix="/v1/files", tags=["files"], responses=ERRORS)


@router.post("", response_model=FilePublic)
async def upload_file(
    request: Request,
    fine_tuning: FineTuningDep,
    gateway: GatewayDep,
    caller: FineTuneCaller,
    file: Annotated[UploadFile, File(description="JSONL or CSV rows in a task's schema.")],
    purpose: Annotated[str, Form(description="Must be 'fine-tune'.")],
    task: Annotated[str | None, Form(description="Default: inferred from the rows.")] = None,
) -> FilePublic:
    """Validate every row (errors name line and field) and store the file.

    The whole request (file and framing) was bounded as it streamed in (``body_limit``),
    before FastAPI parsed it; the file itself is held to max_upload_bytes here.
    """
    limit = gateway.settings.limits.max_upload_bytes
    if file.size is not None and file.size > limit:  # known from the spooled file, unread
        message = f"the file is {file.size} bytes; at most {limit} are accepted"
        raise PayloadTooLarge(message, param="file")
    data = await file.read(limit + 1)  # one byte over is enough for the rows' own check
    filename = file.filename or "upload.jsonl"
    return await asyncio.to_thread(fine_tuning.upload_file, caller, data, filename, purpose, task)


@router.get("", response_model=FileList)
async def list_files(fine_tuning: FineTuningDep, caller: FineTuneCaller) -> FileList:
    """The caller's tenant's files (every tenant's for an admin key), newest first."""
    return await asyncio.to_thread(fine_tuning.list_files, caller)


@router.get("/{file_id}", response_model=FilePublic)
async def get_file(file_id: str, fine_tuning: FineTuningDep, caller: FineTuneCaller) -> FilePublic:
    return await asyncio.to_thread(fine_tuning.get_file, caller, file_id)


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(
    file_id: str, fine_tuning: FineTuningDep, caller: FineTuneCaller
) -> FileDeleted:
    """Delete a file; refused (409) while an unfinished job uses it."""
    return await asyncio.to_thread(fine_tuning.delete_file, caller, file_id)
