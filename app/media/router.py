"""Upload and read back files. Thin: the rules are in service.py, the streaming in upload.py."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse

from app.core import errors as core_errors
from app.core.errors import AppError, responses
from app.identity.dependencies import CurrentPrincipal, DbSession
from app.media import errors, service
from app.media.config import get_media_settings
from app.media.schemas import MediaOut
from app.media.upload import receive_file

router = APIRouter(prefix="/api/v1/media", tags=["media"])
AUTH = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(service.PURPOSES)},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=MediaOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload one file (multipart/form-data, field `file`)",
    description="The format is judged from the bytes: PDF, JPEG and PNG are accepted. The body is "
    "streamed to disk and refused as soon as it passes MEDIA_MAX_UPLOAD_BYTES. The file belongs to "
    "the caller; only they can attach it to a dossier or a report. Counts against the account's "
    "storage quota (with tus uploads) and its hourly upload rate; a file nothing takes within "
    "MEDIA_ORPHAN_RETENTION_HOURS is deleted.",
    openapi_extra=UPLOAD_BODY,
    responses=responses(
        *AUTH,
        errors.NOT_MULTIPART,
        errors.FILE_MISSING,
        errors.TOO_MANY_FILES,
        errors.EMPTY_FILE,
        errors.TOO_LARGE,
        errors.UNSUPPORTED_TYPE,
        errors.TYPE_MISMATCH,
        errors.CORRUPT,
        errors.ACTIVE_CONTENT,
        errors.MALFORMED_UPLOAD,
        errors.QUOTA_EXCEEDED,
        core_errors.RATE_LIMITED,
    ),
)
async def upload(request: Request, principal: CurrentPrincipal, session: DbSession) -> Any:
    staged, fields = await receive_file(
        request, max_bytes=get_media_settings().media_max_upload_bytes
    )
    return await service.store_upload(
        session, principal.user.id, staged, purpose=fields.get("purpose", "document")
    )


async def _mine(session: DbSession, media_id: uuid.UUID, principal: CurrentPrincipal) -> Any:
    media = await service.get(session, media_id)
    if media is None or media.owner_id != principal.user.id:
        raise AppError(errors.MEDIA_NOT_FOUND)
    return media


@router.get(
    "/{media_id}",
    response_model=MediaOut,
    summary="One of my files",
    responses=responses(*AUTH, errors.MEDIA_NOT_FOUND),
)
async def get_media(media_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession) -> Any:
    return await _mine(session, media_id, principal)


@router.get(
    "/{media_id}/content",
    summary="The bytes of one of my files",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **responses(*AUTH, errors.MEDIA_NOT_FOUND),
    },
)
async def get_content(
    media_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> StreamingResponse:
    media = await _mine(session, media_id, principal)
    return StreamingResponse(
        service.content(media),
        media_type=media.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Content-Length": str(media.size_bytes)},
    )
