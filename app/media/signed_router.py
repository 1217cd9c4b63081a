"""Media served through signed, expiring URLs (made by `app.media.public.signed_url`).

No bearer token is needed: the URL itself is the permission, so an image tag or a video player
can load it. The signature binds the media id, the version and the expiry.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.core.errors import AppError, responses
from app.identity.dependencies import DbSession
from app.media import errors, errors_ext, public
from app.media.storage import get_storage

router = APIRouter(prefix="/api/v1/media/signed", tags=["media"])


@router.get(
    "/{media_id}/{name}", response_class=StreamingResponse,
    summary="A photo, video or derived version, through a signed expiring link",
    responses={200: {"content": {"image/jpeg": {}, "video/mp4": {}}},
               **responses(errors_ext.LINK_INVALID, errors.MEDIA_NOT_FOUND)},
)
async def signed_content(
    media_id: uuid.UUID, name: str, session: DbSession,
    exp: Annotated[int, Query()], sig: Annotated[str, Query(max_length=100)],
) -> StreamingResponse:
    if not public.verify_signature(media_id, name, exp, sig):
        raise AppError(errors_ext.LINK_INVALID)
    found = (await public.describe(session, [media_id])).get(media_id)
    if found is None:
        raise AppError(errors.MEDIA_NOT_FOUND)
    if name == public.ORIGINAL:
        key, content_type, size = (found.media.storage_key, found.media.content_type,
                                   found.media.size_bytes)
    elif name in found.variants:
        variant = found.variants[name]
        key, content_type, size = variant.storage_key, variant.content_type, variant.size_bytes
    else:
        # A redacted version is gone even if its link has not expired yet.
        raise AppError(errors.MEDIA_NOT_FOUND)
    return StreamingResponse(
        get_storage().open(key), media_type=content_type,
        headers={"Content-Length": str(size), "X-Content-Type-Options": "nosniff",
                 "Cache-Control": "private, max-age=300"},
    )
