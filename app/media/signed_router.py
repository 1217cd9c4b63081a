"""Media served through signed, expiring URLs (made by `app.media.public.signed_url`).

No bearer token is needed: the URL itself is the permission, so an image tag or a video player
can load it. The signature binds the media id, the version and the expiry.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from app.core.errors import AppError, responses
from app.identity.dependencies import DbSession
from app.media import errors, public
from app.media.s3 import S3Storage
from app.media.storage import LocalStorage, get_storage

router = APIRouter(prefix="/api/v1/media/signed", tags=["media"])


@router.get(
    "/{media_id}/{name}",
    response_class=StreamingResponse,
    description="Supports single byte ranges (`Range: bytes=a-b`) so video players can seek.",
    summary="A photo, video or derived version, through a signed expiring link",
    responses={
        200: {"content": {"image/jpeg": {}, "video/mp4": {}}},
        **responses(errors.LINK_INVALID, errors.MEDIA_NOT_FOUND),
    },
)
async def signed_content(
    media_id: uuid.UUID,
    name: str,
    session: DbSession,
    request: Request,
    exp: Annotated[int, Query()],
    sig: Annotated[str, Query(max_length=100)],
) -> Response:
    if not public.verify_signature(media_id, name, exp, sig):
        raise AppError(errors.LINK_INVALID)
    found = (await public.describe(session, [media_id])).get(media_id)
    if found is None:
        raise AppError(errors.MEDIA_NOT_FOUND)
    if name == public.ORIGINAL:
        # Evidence the system recorded (a camera's picture, faces and plates as taken) has no
        # uploader to link its original to: staff read it through the audited endpoint only.
        if not found.media.storage_key or found.media.owner_id is None:
            raise AppError(errors.MEDIA_NOT_FOUND)
        key, content_type, size = (
            found.media.storage_key,
            found.media.content_type,
            found.media.size_bytes,
        )
    elif name in found.variants:
        variant = found.variants[name]
        key, content_type, size = variant.storage_key, variant.content_type, variant.size_bytes
    else:
        # A redacted version is gone even if its link has not expired yet.
        raise AppError(errors.MEDIA_NOT_FOUND)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"}
    storage = get_storage()
    if isinstance(storage, LocalStorage):
        # Starlette answers Range requests for files (video players seek with them).
        return FileResponse(storage.path(key), media_type=content_type, headers=headers)
    wanted = _single_range(request.headers.get("range"), size)
    if wanted is not None and isinstance(storage, S3Storage):
        start, end = wanted
        return StreamingResponse(
            storage.open_range(key, start, end),
            status_code=206,
            media_type=content_type,
            headers={
                **headers,
                "Accept-Ranges": "bytes",
                "Content-Length": str(end - start + 1),
                "Content-Range": f"bytes {start}-{end}/{size}",
            },
        )
    return StreamingResponse(
        storage.open(key),
        media_type=content_type,
        headers={**headers, "Accept-Ranges": "bytes", "Content-Length": str(size)},
    )


def _single_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else (several ranges, nonsense) is served
    whole, which a client must accept."""
    if not header or not header.startswith("bytes=") or "," in header or size == 0:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), (int(last) if last else size - 1)
    except ValueError:
        return None
    end = min(end, size - 1)
    return (start, end) if 0 <= start <= end else None
