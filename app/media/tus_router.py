"""tus 1.0 at /api/v1/uploads/ (for videos from phones on weak networks). Thin: headers in and
out; the rules are in tus_service.py. A PATCH commits in steps, in one named unit of work
(`_append_unit_of_work`)."""

from __future__ import annotations

import uuid
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status

from app.core import errors as core_errors
from app.core.config import get_settings
from app.core.errors import AppError, responses
from app.identity.dependencies import CurrentPrincipal, DbSession
from app.media import errors
from app.media import tus_service as tus
from app.media.config import get_media_settings
from app.media.models import TusUpload

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads (tus)"])
AUTH = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)
OCTETS = "application/offset+octet-stream"
JUDGED = responses(*AUTH, errors.TUS_VERSION)


def _version(request: Request) -> None:
    if request.headers.get("tus-resumable") != tus.VERSION:
        raise tus.fail(errors.TUS_VERSION, headers={"Tus-Version": tus.VERSION})


def _state_headers(upload: TusUpload) -> dict[str, str]:
    headers = {
        **tus.BASE_HEADERS,
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Cache-Control": "no-store",
    }
    if upload.completed_at is None:
        headers["Upload-Expires"] = format_datetime(upload.expires_at, usegmt=True)
    if upload.media_id is not None:
        # Not part of tus: the media id to attach the file to an incident report.
        headers["Upload-Media-Id"] = str(upload.media_id)
    return headers


def _options() -> Response:
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            **tus.BASE_HEADERS,
            "Tus-Version": tus.VERSION,
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(get_media_settings().media_tus_max_size_bytes),
            "Tus-Checksum-Algorithm": ",".join(tus.ALGORITHMS),
        },
    )


@router.options("/", status_code=204, response_model=None, summary="tus: what this server supports")
async def options_root() -> Response:
    return _options()


@router.options(
    "/{upload_id}", status_code=204, response_model=None, summary="tus: what this server supports"
)
async def options_upload(upload_id: str) -> Response:
    return _options()


async def _append_unit_of_work(
    request: Request, session: DbSession, upload: TusUpload, offset: int
) -> None:
    """A PATCH body (or a creation's first chunk) appended at `offset`: the tus PATCH's unit of
    work, the one request path that commits before it ends, in steps under the upload's writer
    lock (a second writer meanwhile gets 423), so that the next writer reads what this one did:

    1. what the request did so far (a creation) is committed, and the upload is read again in a
       transaction begun under the lock;
    2. the body streams into the part file with no transaction open (a video over a weak
       network takes minutes; nothing holds a connection or SQLite's lock meanwhile);
    3. the new offset, and on the last byte the media object (or a refused file's removal), is
       committed before the lock goes, even when the client is gone: an acknowledged offset is
       durable.
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != OCTETS:
        raise tus.fail(errors.TUS_CONTENT_TYPE)
    checksum = tus.parse_checksum(request.headers.get("upload-checksum"))
    async with tus.sole_writer(upload.id):
        await session.commit()  # 1
        start = await tus.resume_at(session, upload, offset)
        await session.commit()  # 2
        written = await tus.receive(upload, start, request.stream(), checksum)
        try:
            await tus.advance(session, upload, start, written)
        except AppError as exc:
            if exc.commit:  # 3, a refused file
                await session.commit()
            raise
        await session.commit()  # 3


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    summary="tus creation (and creation-with-upload)",
    description="Headers: `Tus-Resumable: 1.0.0`, `Upload-Length`, optional `Upload-Metadata` "
    "(`filename`, `filetype`). A body of type application/offset+octet-stream is the first "
    "chunk. Answers `Location` and `Upload-Expires`.",
    responses={
        **JUDGED,
        **responses(
            errors.TUS_LENGTH_REQUIRED,
            errors.TUS_TOO_LARGE,
            errors.QUOTA_EXCEEDED,
            errors.TUS_METADATA,
            core_errors.RATE_LIMITED,
        ),
    },
)
async def create(request: Request, principal: CurrentPrincipal, session: DbSession) -> Response:
    _version(request)
    raw = request.headers.get("upload-length", "")
    if not raw.isdigit():
        raise tus.fail(errors.TUS_LENGTH_REQUIRED)
    metadata = tus.parse_metadata(request.headers.get("upload-metadata"))
    upload = await tus.create(session, principal.user.id, int(raw), metadata)
    if request.headers.get("content-type", "").startswith(OCTETS):
        await _append_unit_of_work(request, session, upload, 0)
    elif upload.length == 0:
        await tus.complete(session, upload)
    headers = _state_headers(upload)
    headers["Location"] = f"{get_settings().public_base_url}/api/v1/uploads/{upload.id}"
    return Response(status_code=status.HTTP_201_CREATED, headers=headers)


@router.head(
    "/{upload_id}",
    response_model=None,
    summary="tus: the upload's offset",
    responses={**JUDGED, **responses(errors.TUS_NOT_FOUND)},
)
async def head(
    upload_id: uuid.UUID, request: Request, principal: CurrentPrincipal, session: DbSession
) -> Response:
    _version(request)
    upload = await tus.get_mine(session, principal.user.id, upload_id)
    return Response(status_code=status.HTTP_200_OK, headers=_state_headers(upload))


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_model=None,
    summary="tus: append bytes at Upload-Offset",
    description="409 when Upload-Offset is not the server's offset; 423 while another PATCH of "
    "the same upload is writing (on any server process; ask HEAD and retry); 460 when "
    "Upload-Checksum (sha1 or sha256) does not match (the chunk is discarded); 413 past "
    "Upload-Length. The last chunk turns the upload into a media object (`Upload-Media-Id`), "
    "judged like any upload.",
    responses={
        **JUDGED,
        **responses(
            errors.TUS_NOT_FOUND,
            errors.TUS_OFFSET_MISMATCH,
            errors.TUS_LOCKED,
            errors.TUS_CONTENT_TYPE,
            errors.TUS_PAST_LENGTH,
            errors.TUS_CHECKSUM_MISMATCH,
            errors.TUS_CHECKSUM_ALGORITHM,
            errors.TUS_ALREADY_COMPLETE,
        ),
    },
)
async def patch(
    upload_id: uuid.UUID, request: Request, principal: CurrentPrincipal, session: DbSession
) -> Any:
    _version(request)
    upload = await tus.get_mine(session, principal.user.id, upload_id)
    raw = request.headers.get("upload-offset", "")
    if not raw.isdigit():
        raise tus.fail(
            errors.TUS_OFFSET_MISMATCH,
            params={"offset": upload.offset},
            headers={"Upload-Offset": str(upload.offset)},
        )
    await _append_unit_of_work(request, session, upload, int(raw))
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_state_headers(upload))


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_model=None,
    summary="tus termination: drop an upload",
    responses={**JUDGED, **responses(errors.TUS_NOT_FOUND, errors.TUS_LOCKED)},
)
async def delete(
    upload_id: uuid.UUID, request: Request, principal: CurrentPrincipal, session: DbSession
) -> Response:
    _version(request)
    upload = await tus.get_mine(session, principal.user.id, upload_id)
    await tus.terminate(session, upload)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=tus.BASE_HEADERS)
