"""Public versions of photos and videos, for other domains (incidents): ask for processing,
describe what is ready, hand out signed expiring URLs, withdraw public versions.

Originals are never public: a signed URL to an original is only made for the audiences the
calling domain allows (the reporter, staff).
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock, jobs
from app.core.config import get_settings
from app.media import formats
from app.media.config_ext import get_media_ext_settings
from app.media.derived import MediaProcessing, MediaVariant
from app.media.models import MediaObject
from app.media.storage import get_storage, staging_dir

PROCESS_JOB = "media.process"
ORIGINAL = "original"


@dataclass
class Described:
    media: MediaObject
    kind: str | None
    processing: MediaProcessing | None
    variants: dict[str, MediaVariant] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.processing is not None and self.processing.status == "ready"


async def request_processing(session: AsyncSession, media: Iterable[MediaObject]) -> None:
    """Queue each photo/video once (in the caller's transaction)."""
    for item in media:
        kind = formats.kind_of(item.content_type)
        if kind is None or await session.get(MediaProcessing, item.id) is not None:
            continue
        session.add(MediaProcessing(media_id=item.id, kind=kind))
        await session.flush()
        await jobs.enqueue(session, PROCESS_JOB, {"media_id": str(item.id)},
                           dedupe_key=f"{PROCESS_JOB}:{item.id}")


async def describe(session: AsyncSession, media_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID,
                                                                                  Described]:
    ids = list(set(media_ids))
    if not ids:
        return {}
    media = (await session.execute(sa.select(MediaObject).where(MediaObject.id.in_(ids))))
    out = {m.id: Described(m, formats.kind_of(m.content_type), None) for m in media.scalars()}
    states = await session.execute(
        sa.select(MediaProcessing).where(MediaProcessing.media_id.in_(ids))
    )
    for state in states.scalars():
        if state.media_id in out:
            out[state.media_id].processing = state
    variants = await session.execute(sa.select(MediaVariant).where(MediaVariant.media_id.in_(ids)))
    for variant in variants.scalars():
        if variant.media_id in out:
            out[variant.media_id].variants[variant.name] = variant
    return out


async def withdraw_public_versions(session: AsyncSession, media_id: uuid.UUID) -> int:
    """Delete every derived (public) file of a media object; the original stays."""
    rows = list((await session.execute(
        sa.select(MediaVariant).where(MediaVariant.media_id == media_id)
    )).scalars())
    for variant in rows:
        await get_storage().delete(variant.storage_key)
        await session.delete(variant)
    await session.flush()
    return len(rows)


# ---------------------------------------------------------------- signed URLs


def _signature(media_id: uuid.UUID, name: str, expires: int) -> str:
    key = (get_settings().secret_key + ":media-url").encode()
    message = f"{media_id}:{name}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:40]


def signed_url(media_id: uuid.UUID, name: str, ttl_seconds: int | None = None) -> str:
    ttl = ttl_seconds or get_media_ext_settings().media_url_ttl_seconds
    # Rounded up to the next multiple of the TTL/4, so a page of URLs stays cacheable a while.
    step = max(1, ttl // 4)
    expires = (int(clock.now().timestamp()) + ttl + step - 1) // step * step
    sig = _signature(media_id, name, expires)
    return (f"{get_settings().public_base_url}/api/v1/media/signed/{media_id}/{name}"
            f"?exp={expires}&sig={sig}")


def verify_signature(media_id: uuid.UUID, name: str, expires: int, sig: str) -> bool:
    if expires < int(clock.now().timestamp()):
        return False
    return hmac.compare_digest(_signature(media_id, name, expires), sig)


# ---------------------------------------------------------------- worker side


async def fetch_original(media: MediaObject, into: Path) -> Path:
    """Copy the stored bytes to a local file (any backend), streaming."""
    target = into / f"original{Path(media.storage_key).suffix}"
    async with await anyio.open_file(target, "wb") as out:
        async for chunk in get_storage().open(media.storage_key):
            await out.write(chunk)
    return target


def work_dir(media_id: uuid.UUID) -> Path:
    path = staging_dir() / f"work-{media_id}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- personal data


async def _export(session: AsyncSession, user_id: uuid.UUID) -> dict[str, object]:
    from app.media.tus_models import TusUpload

    uploads = await session.execute(sa.select(TusUpload).where(TusUpload.owner_id == user_id))
    return {"unfinished_uploads": [u.model_dump(mode="json") for u in uploads.scalars()
                                   if u.completed_at is None]}


async def _erase(session: AsyncSession, user_id: uuid.UUID) -> list:  # type: ignore[type-arg]
    """Before the media section erases the originals: their derived files and the unfinished
    uploads of the person (rows alone would cascade, the files would not)."""
    from app.media import tus_service
    from app.media.tus_models import TusUpload

    held = sa.select(MediaObject.id).where(MediaObject.owner_id == user_id,
                                           MediaObject.legal_hold.is_(False))
    variants = await session.execute(sa.select(MediaVariant).where(MediaVariant.media_id.in_(held)))
    for variant in variants.scalars():
        await get_storage().delete(variant.storage_key)
        await session.delete(variant)
    uploads = await session.execute(sa.select(TusUpload).where(TusUpload.owner_id == user_id))
    for upload in uploads.scalars():
        await tus_service.terminate(session, upload)
    await session.flush()
    return []


def _register_personal_data() -> None:
    from app.core import personal_data
    from app.media import service as media_service  # noqa: F401  (registers "media" first)

    # Registered after "media", so erased before it (erasure runs in reverse order).
    personal_data.register("media_versions", exporter=_export, eraser=_erase)


_register_personal_data()
