"""Public versions of photos and videos, for other domains (incidents): ask for processing,
describe what is ready, hand out signed expiring URLs, withdraw public versions.

Originals are never public: a signed URL to an original is only made for the audiences the
calling domain allows (the reporter, staff).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock, jobs
from app.core.config import get_settings
from app.core.security import constant_time_equals
from app.core.tables import table_of
from app.media import formats
from app.media.config import get_media_settings
from app.media.models import MediaObject, MediaProcessing, MediaVariant, TusUpload
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
        await jobs.enqueue(
            session, PROCESS_JOB, {"media_id": str(item.id)}, dedupe_key=f"{PROCESS_JOB}:{item.id}"
        )


async def describe(
    session: AsyncSession, media_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Described]:
    """Each file with its processing state and public versions, in one round trip (lists of
    incidents call this for every page)."""
    ids = list(set(media_ids))
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(MediaObject, MediaProcessing, MediaVariant)
        .outerjoin(MediaProcessing, col(MediaProcessing.media_id) == col(MediaObject.id))
        .outerjoin(MediaVariant, col(MediaVariant.media_id) == col(MediaObject.id))
        .where(col(MediaObject.id).in_(ids))
    )
    out: dict[uuid.UUID, Described] = {}
    for media, state, variant in rows:
        found = out.get(media.id)
        if found is None:
            found = out[media.id] = Described(media, formats.kind_of(media.content_type), state)
        if variant is not None:
            found.variants[variant.name] = variant
    return out


@dataclass(frozen=True)
class Ready:
    """A processed file as a public list shows it: its probe and the names of its versions."""

    kind: str | None
    width: int | None
    height: int | None
    duration_s: float | None
    error_code: str | None
    versions: frozenset[str]

    @classmethod
    def of(cls, rows: list[Any]) -> Ready | None:
        """From the rows `join_ready_versions` gave for one file; None if not processed."""
        first = rows[0]
        if first["media_ready"] is None:
            return None
        return cls(
            formats.kind_of(first["media_content_type"]),
            first["media_width"],
            first["media_height"],
            first["media_duration_s"],
            first["media_error_code"],
            frozenset(r["media_version"] for r in rows if r["media_version"] is not None),
        )


def join_ready_versions(
    source: sa.FromClause, media_id: sa.ColumnElement[Any]
) -> tuple[sa.FromClause, list[sa.ColumnElement[Any]]]:
    """Outer-joins to `source` what a public list shows of the file `media_id` names, so a
    caller's one statement carries it (the nearby feed, every page): one row per public version
    (columns `media_ready`, `media_content_type`, `media_width`, `media_height`,
    `media_duration_s`, `media_error_code`, `media_version`); `media_ready` is NULL while the
    file is not processed. Read the rows (mappings) back with `Ready.of`."""
    objects = table_of(MediaObject)
    states = table_of(MediaProcessing)
    variants = table_of(MediaVariant)
    joined = (
        source.outerjoin(states, sa.and_(states.c.media_id == media_id, states.c.status == "ready"))
        .outerjoin(objects, objects.c.id == states.c.media_id)
        .outerjoin(variants, variants.c.media_id == states.c.media_id)
    )
    columns: list[sa.ColumnElement[Any]] = [
        states.c.media_id.label("media_ready"),
        objects.c.content_type.label("media_content_type"),
        states.c.width.label("media_width"),
        states.c.height.label("media_height"),
        states.c.duration_s.label("media_duration_s"),
        states.c.error_code.label("media_error_code"),
        variants.c.name.label("media_version"),
    ]
    return joined, columns


async def withdraw_public_versions(session: AsyncSession, media_id: uuid.UUID) -> int:
    """Delete every derived (public) file of a media object; the original stays."""
    rows = list(
        (
            await session.execute(
                sa.select(MediaVariant).where(col(MediaVariant.media_id) == media_id)
            )
        ).scalars()
    )
    for variant in rows:
        await get_storage().delete(variant.storage_key)
        await session.delete(variant)
    await session.flush()
    return len(rows)


# ---------------------------------------------------------------- signed URLs


@functools.lru_cache(maxsize=4)
def _keyed(secret_key: str) -> hmac.HMAC:
    """The HMAC with its key set up, copied for each URL (a page of the feed signs dozens)."""
    return hmac.new((secret_key + ":media-url").encode(), digestmod=hashlib.sha256)


def _signature(media_id: uuid.UUID, name: str, expires: int) -> str:
    mac = _keyed(get_settings().secret_key).copy()
    mac.update(f"{media_id}:{name}:{expires}".encode())
    return mac.hexdigest()[:40]


def signed_url(media_id: uuid.UUID, name: str, ttl_seconds: int | None = None) -> str:
    return url_signer(ttl_seconds)(media_id, name)


def url_signer(ttl_seconds: int | None = None) -> Callable[[uuid.UUID, str], str]:
    """`signed_url` for a page of files: settings, clock and key are read once."""
    ttl = ttl_seconds or get_media_settings().media_url_ttl_seconds
    # Rounded up to the next multiple of the TTL/4, so a page of URLs stays cacheable a while.
    step = max(1, ttl // 4)
    expires = (int(clock.now().timestamp()) + ttl + step - 1) // step * step
    keyed = _keyed(get_settings().secret_key)
    base = f"{get_settings().public_base_url}/api/v1/media/signed/"

    def sign(media_id: uuid.UUID, name: str) -> str:
        mac = keyed.copy()
        mac.update(f"{media_id}:{name}:{expires}".encode())
        return f"{base}{media_id}/{name}?exp={expires}&sig={mac.hexdigest()[:40]}"

    return sign


def verify_signature(media_id: uuid.UUID, name: str, expires: int, sig: str) -> bool:
    if expires < int(clock.now().timestamp()):
        return False
    return constant_time_equals(_signature(media_id, name, expires), sig)


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
    uploads = await session.execute(sa.select(TusUpload).where(col(TusUpload.owner_id) == user_id))
    return {
        "unfinished_uploads": [
            u.model_dump(mode="json") for u in uploads.scalars() if u.completed_at is None
        ]
    }


async def _erase(session: AsyncSession, user_id: uuid.UUID) -> list:
    """Before the media section erases the originals: their derived files and the unfinished
    uploads of the person (rows alone would cascade, the files would not)."""
    from app.media import tus_service

    held = sa.select(col(MediaObject.id)).where(
        col(MediaObject.owner_id) == user_id, col(MediaObject.legal_hold).is_(False)
    )
    variants = await session.execute(
        sa.select(MediaVariant).where(col(MediaVariant.media_id).in_(held))
    )
    for variant in variants.scalars():
        await get_storage().delete(variant.storage_key)
        await session.delete(variant)
    uploads = await session.execute(sa.select(TusUpload).where(col(TusUpload.owner_id) == user_id))
    for upload in uploads.scalars():
        await tus_service.terminate(session, upload, while_written=True)
    await session.flush()
    return []


def _register_personal_data() -> None:
    from app.core import personal_data
    from app.media import service as media_service  # noqa: F401  (registers "media" first)

    # Registered after "media", so erased before it (erasure runs in reverse order).
    personal_data.register("media_versions", exporter=_export, eraser=_erase)


_register_personal_data()
