"""Worker jobs of the media domain: processing photos and videos (OpenCV, in a thread)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.errors import AppError
from app.core.jobs import job_handler, periodic
from app.core.logging import get_logger
from app.media import inspect, processing, public
from app.media import service as media_service
from app.media.models import MediaObject, MediaProcessing, MediaVariant
from app.media.storage import get_storage

log = get_logger("media")


@job_handler(public.PROCESS_JOB)
async def process_media(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Idempotent: a finished item is left alone; a rerun replaces the derived files."""
    media_id = uuid.UUID(payload["media_id"])
    media = await session.get(MediaObject, media_id)
    state = await session.get(MediaProcessing, media_id)
    if media is None or state is None or state.status == "ready":
        return
    work = public.work_dir(media_id)
    try:
        source = await public.fetch_original(media, work)
        try:
            # Deep inspection first: the upload only checked what is cheap.
            await anyio.to_thread.run_sync(
                lambda: inspect.inspect_file(source, media.content_type, deep=True)
            )
            result = await anyio.to_thread.run_sync(
                processing.process, source, media.content_type, state.kind, work / "out"
            )
        except (AppError, inspect.Corrupt) as exc:
            code = exc.error.code if isinstance(exc, AppError) else "media.corrupt"
            state.status, state.error_code, state.processed_at = "failed", code, clock.now()
            log.warning("media_processing_refused", media_id=str(media_id), code=code)
            return
        await session.execute(sa.delete(MediaVariant).where(col(MediaVariant.media_id) == media_id))
        for output in result.outputs:
            key = f"derived/{media_id}/{output.name}{output.path.suffix}"
            size = output.path.stat().st_size
            await get_storage().put_file(key, output.path)
            session.add(
                MediaVariant(
                    media_id=media_id,
                    name=output.name,
                    content_type=output.content_type,
                    storage_key=key,
                    width=output.width,
                    height=output.height,
                    size_bytes=size,
                )
            )
        state.status, state.processed_at, state.error_code = "ready", clock.now(), None
        state.width, state.height = result.width, result.height
        state.duration_s, state.fps, state.frames = result.duration_s, result.fps, result.frames
        state.faces, state.plates = result.faces, result.plates
        session.add(state)
    finally:
        await anyio.to_thread.run_sync(public.remove_dir, work)


@job_handler("media.tus_expire")
async def expire_tus_upload(session: AsyncSession, payload: dict[str, Any]) -> None:
    from app.media import tus_service

    await tus_service.expire(session, uuid.UUID(payload["upload_id"]))


@periodic("media.purge_orphans", every=timedelta(hours=1))
async def purge_orphans(session: AsyncSession, _payload: dict[str, Any]) -> None:
    """Uploads nothing took within MEDIA_ORPHAN_RETENTION_HOURS go, with their bytes."""
    purged = await media_service.purge_orphans(session)
    if purged:
        log.info("media_orphans_purged", count=purged)
