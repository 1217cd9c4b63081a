"""tus 1.0 resumable uploads: core, creation, creation-with-upload, expiration, checksum,
termination.

The bytes go straight from the request stream to a staging file at the upload's offset, one chunk
at a time, so memory does not grow with the file. A PATCH cut off by the network keeps what
arrived (the client asks HEAD for the offset and goes on), unless it carried a checksum, which
then cannot be verified. Once the last byte is in, the file goes through the same checks as a
multipart upload (`media.service.store_upload`) and becomes a media object.

Concurrency: one writer per upload across every server process of the host: a PATCH takes an
exclusive, non-blocking OS lock (flock) on the upload's part file before it reads the offset, and
keeps it until the new offset (and, on the last byte, the media object) is committed: the
PATCH's unit of work, `tus_router._append_unit_of_work`, the one place that commits. A second
PATCH meanwhile, in this process or another, is answered 423 as tusd does, before it has
touched a byte; the client asks HEAD and goes on. A termination (DELETE, or the expiry job, which
is then retried later) takes the same lock to remove the file. The kernel drops the lock with the
process, so a crashed worker blocks nobody. The offset is still advanced with a compare-and-set.
Unfinished uploads expire after MEDIA_TUS_EXPIRATION_HOURS (a delayed job).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.requests import ClientDisconnect

from app.core import clock, jobs
from app.core.errors import AppError, ErrorCode
from app.core.tables import rows_matched
from app.media import errors, quota
from app.media import service as media_service
from app.media.config import get_media_settings
from app.media.models import MediaObject, TusUpload
from app.media.sniff import HEAD_BYTES, TAIL_BYTES
from app.media.storage import staging_dir
from app.media.upload import StagedFile

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
ALGORITHMS: dict[str, Any] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
EXPIRE_JOB = "media.tus_expire"
BASE_HEADERS = {"Tus-Resumable": VERSION}
WRITE_BYTES = 1024 * 1024


def fail(
    err: ErrorCode,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AppError:
    return AppError(
        err,
        params=params or {},
        extra=params or {},
        headers={**BASE_HEADERS, **(headers or {})},
    )


def part_path(upload_id: uuid.UUID) -> Path:
    # Beside (not in) the multipart staging folder: these live for up to a day. Under the media
    # root, so keeping the finished file is a rename.
    folder = staging_dir().parent / "tus"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{upload_id}.part"


def parse_metadata(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or not key.isascii() or key in out:
            raise fail(errors.TUS_METADATA)
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise fail(errors.TUS_METADATA) from None
    return out


def parse_checksum(header: str | None) -> tuple[Any, bytes] | None:
    if not header:
        return None
    name, _, value = header.strip().partition(" ")
    if name not in ALGORITHMS:
        raise fail(errors.TUS_CHECKSUM_ALGORITHM)
    try:
        return ALGORITHMS[name], base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise fail(errors.TUS_CHECKSUM_ALGORITHM) from None


async def create(
    session: AsyncSession, owner_id: uuid.UUID, length: int, metadata: dict[str, str]
) -> TusUpload:
    settings = get_media_settings()
    if length > settings.media_tus_max_size_bytes:
        raise fail(errors.TUS_TOO_LARGE, params={"limit": settings.media_tus_max_size_bytes})
    await quota.admit(session, owner_id)
    try:
        # The whole length is reserved now, so an upload never fails for quota half-way.
        await quota.reserve(session, owner_id, length)
    except AppError as exc:
        raise fail(exc.error, params=exc.params) from None
    lifetime = timedelta(hours=settings.media_tus_expiration_hours)
    upload = TusUpload(
        owner_id=owner_id, length=length, meta=metadata, expires_at=clock.now() + lifetime
    )
    session.add(upload)
    await session.flush()
    await anyio.Path(part_path(upload.id)).touch()
    await jobs.enqueue(
        session,
        EXPIRE_JOB,
        {"upload_id": str(upload.id)},
        delay=timedelta(hours=settings.media_tus_expiration_hours),
        dedupe_key=f"{EXPIRE_JOB}:{upload.id}",
    )
    return upload


async def get_mine(session: AsyncSession, owner_id: uuid.UUID, upload_id: uuid.UUID) -> TusUpload:
    """404 for someone else's upload, and for an unfinished one past its expiry."""
    upload = await session.get(TusUpload, upload_id)
    if (
        upload is None
        or upload.owner_id != owner_id
        or (upload.completed_at is None and upload.expires_at <= clock.now())
    ):
        raise fail(errors.TUS_NOT_FOUND)
    return upload


@contextlib.asynccontextmanager
async def sole_writer(upload_id: uuid.UUID, *, missing_ok: bool = False) -> AsyncIterator[None]:
    """Hold the upload's writer lock, or answer 423 at once (no waiting behind a slow phone).
    Without its part file there is nothing to write: 404, or with `missing_ok` nothing to hold.
    A PATCH (`tus_router`) holds it until what it wrote is committed.

    An flock belongs to an open file description: it excludes a second open() of the file in
    this process as well as in the other workers, and the kernel releases it when the
    descriptor is closed or the process dies."""
    try:
        fd = os.open(part_path(upload_id), os.O_RDWR)
    except FileNotFoundError:
        if not missing_ok:
            raise fail(errors.TUS_NOT_FOUND) from None
        fd = None
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise fail(errors.TUS_LOCKED, headers={"Retry-After": "1"}) from None
        yield
    finally:
        os.close(fd)


async def resume_at(session: AsyncSession, upload: TusUpload, offset: int) -> int:
    """Where this PATCH writes: the upload's committed offset, which the client's must match.
    Call under the writer lock, in a transaction begun after it was taken: another process may
    have moved the upload on since this request loaded it."""
    await _reload(session, upload)
    if upload.completed_at is not None:
        raise fail(errors.TUS_ALREADY_COMPLETE)
    if offset != upload.offset:
        raise fail(
            errors.TUS_OFFSET_MISMATCH,
            params={"offset": upload.offset},
            headers={"Upload-Offset": str(upload.offset)},
        )
    return upload.offset


async def receive(
    upload: TusUpload,
    start: int,
    stream: AsyncIterator[bytes],
    checksum: tuple[Any, bytes] | None,
) -> int:
    """Write a PATCH body into the part file at `start` and return how many bytes were kept.
    No database: the caller holds no transaction while a phone sends (minutes on a weak
    network). A checksum mismatch (or a checksummed body cut off) and bytes past the declared
    length keep nothing and raise."""
    remaining = upload.length - start
    digest = checksum[0]() if checksum else None
    written = 0
    problem: AppError | None = None
    interrupted = False  # a checksum cannot be verified on part of a body
    # The server hands the body over in ~64 KiB pieces; each file write is a hop to a worker
    # thread, so pieces are gathered up to WRITE_BYTES first (memory stays at that).
    buffer = bytearray()
    idle = get_media_settings().media_tus_idle_timeout_seconds
    async with await anyio.open_file(part_path(upload.id), "r+b") as out:
        await out.seek(start)
        try:
            async for chunk in _until_silent(stream, idle):
                if written + len(buffer) + len(chunk) > remaining:
                    problem = fail(errors.TUS_PAST_LENGTH, params={"length": upload.length})
                    break
                buffer += chunk
                if digest is not None:
                    digest.update(chunk)
                if len(buffer) >= WRITE_BYTES:
                    await out.write(bytes(buffer))
                    written += len(buffer)
                    buffer.clear()
        except ClientDisconnect:
            interrupted = True  # keep what arrived: the client resumes from HEAD
        if buffer and problem is None:
            await out.write(bytes(buffer))
            written += len(buffer)
        if (
            problem is None
            and checksum is not None
            and (interrupted or digest is None or digest.digest() != checksum[1])
        ):
            problem = fail(errors.TUS_CHECKSUM_MISMATCH, headers={"Upload-Offset": str(start)})
        if problem is not None:
            written = 0
        await out.truncate(start + written)
    if problem is not None:
        raise problem
    return written


async def advance(session: AsyncSession, upload: TusUpload, start: int, written: int) -> None:
    """Move the offset from `start` by `written` (compare-and-set: 409 if the upload was
    terminated or expired while the bytes came in); the last byte makes the media object."""
    moved = await session.execute(
        sa.update(TusUpload)
        .where(col(TusUpload.id) == upload.id, col(TusUpload.offset) == start)
        .values(offset=start + written)
    )
    if rows_matched(moved) != 1:
        raise fail(errors.TUS_OFFSET_MISMATCH, params={"offset": start})
    await _reload(session, upload)
    if upload.offset == upload.length:
        await complete(session, upload)


async def _reload(session: AsyncSession, upload: TusUpload) -> None:
    """The committed state of the upload, in place; 404 if it was removed meanwhile."""
    if await session.get(TusUpload, upload.id, populate_existing=True) is None:
        raise fail(errors.TUS_NOT_FOUND)


async def _until_silent(stream: AsyncIterator[bytes], idle: float) -> AsyncIterator[bytes]:
    """The body's pieces; a body silent for `idle` seconds ends like a dropped connection."""
    pieces = aiter(stream)
    while True:
        try:
            async with asyncio.timeout(idle):
                piece = await anext(pieces)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ClientDisconnect from None
        yield piece


async def complete(session: AsyncSession, upload: TusUpload) -> MediaObject:
    """The last byte is in: judge the file like any upload and keep it as a media object.

    A refused file is removed along with its upload: the error says to commit that."""
    path = part_path(upload.id)
    staged = await anyio.to_thread.run_sync(_staged, path, upload)
    try:
        media = await media_service.store_upload(session, upload.owner_id, staged, reserved=True)
    except AppError as exc:
        await quota.release(session, upload.owner_id, upload.length)
        await session.delete(upload)
        raise AppError(
            exc.error,
            params=exc.params,
            extra=exc.extra,
            headers={**BASE_HEADERS, **exc.headers},
            commit=True,
        ) from None
    upload.completed_at, upload.media_id = clock.now(), media.id
    session.add(upload)
    await session.flush()
    return media


def _staged(path: Path, upload: TusUpload) -> StagedFile:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        handle.seek(0)
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
        handle.seek(max(0, upload.length - TAIL_BYTES))
        tail = handle.read()
    meta = upload.meta or {}
    return StagedFile(
        path=path,
        filename=(meta.get("filename") or meta.get("name")),
        declared_type=(meta.get("filetype") or meta.get("type")),
        size=upload.length,
        head=head,
        tail=tail,
        sha256=digest.hexdigest(),
    )


async def terminate(
    session: AsyncSession, upload: TusUpload, *, while_written: bool = False
) -> None:
    """Remove the upload and its bytes. Under the writer lock, so 423 while a PATCH writes it
    (as tusd answers): a writer never finds the file gone while it judges the last byte. A PATCH
    that comes after finds no file (404). `while_written`: remove it anyway (an account's erasure
    must not stop half done); such a writer then finds the upload gone when it commits."""
    if while_written:
        await anyio.Path(part_path(upload.id)).unlink(missing_ok=True)
    else:
        async with sole_writer(upload.id, missing_ok=True):
            await anyio.Path(part_path(upload.id)).unlink(missing_ok=True)
    if upload.completed_at is None:  # a finished one's bytes are its file's now
        await quota.release(session, upload.owner_id, upload.length)
    await session.delete(upload)
    await session.flush()


async def expire(session: AsyncSession, upload_id: uuid.UUID) -> bool:
    """Remove an unfinished upload past its expiry (the delayed job, or a sweep)."""
    upload = await session.get(TusUpload, upload_id)
    if upload is None or upload.completed_at is not None or upload.expires_at > clock.now():
        return False
    await terminate(session, upload)
    return True
