"""Rules of stored files: accept by content, keep by owner. Other domains call these functions."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.errors import AppError
from app.core.personal_data import Retained
from app.media import errors, formats, inspect, quota, sniff  # noqa: F401  (formats registers)
from app.media.config import get_media_settings
from app.media.models import MediaObject, MediaProcessing, MediaVariant
from app.media.storage import get_storage, new_staging_path
from app.media.upload import StagedFile

Media = MediaObject
"""The stored-file type other domains name in their signatures (what `get`, `get_many` return). Its
table stays media's: they read files through this module's functions."""

PURPOSES = ("document", "result")
SYSTEM_EVIDENCE = "evidence"  # the purpose of files the system recorded itself (no owner)


def accepted_labels(types: Iterable[str]) -> str:
    return ", ".join(sniff.FORMATS[t].label for t in types if t in sniff.FORMATS)


def judge(staged: StagedFile, accepted: Iterable[str] | None = None) -> sniff.Format:
    """The file's real format, or the problem that refuses it."""
    allowed = tuple(accepted) if accepted is not None else tuple(sniff.FORMATS)
    fmt = sniff.detect(staged.head)
    if fmt is None or fmt.content_type not in allowed:
        label = accepted_labels(allowed)
        raise AppError(
            errors.UNSUPPORTED_TYPE, params={"accepted": label}, extra={"accepted": list(allowed)}
        )
    if sniff.declared_mismatch(fmt, staged.declared_type, staged.filename):
        raise AppError(
            errors.TYPE_MISMATCH,
            params={"detected": fmt.label},
            extra={"detected": fmt.content_type},
        )
    if not fmt.complete(staged.tail):
        raise AppError(errors.CORRUPT)
    if fmt is sniff.PDF and staged.markers:
        markers = ", ".join(sorted(staged.markers))
        raise AppError(
            errors.ACTIVE_CONTENT,
            params={"markers": markers},
            extra={"markers": sorted(staged.markers)},
        )
    return fmt


async def store_upload(
    session: AsyncSession,
    owner_id: uuid.UUID,
    staged: StagedFile,
    *,
    purpose: str = "document",
    accepted: Iterable[str] | None = None,
    reserved: bool = False,
) -> MediaObject:
    """Check a staged upload and keep it; the staging file is consumed either way. It counts
    as an attempt against the account's upload rate and its bytes against its quota
    (`reserved`: a finished tus upload, admitted and reserved when it was created).

    The rate is counted once the body is in, not before: on SQLite the first write of a
    transaction locks the database until its end, which must not last a phone's upload."""
    try:
        fmt = judge(staged, accepted)
        if not reserved:
            await quota.admit(session, owner_id)
        # Photos and videos are judged on the whole file too (structure, pixels, duration).
        await inspect.check(staged.path, fmt.content_type)
        if not reserved:
            await quota.reserve(session, owner_id, staged.size)
        media = MediaObject(
            owner_id=owner_id,
            purpose=purpose if purpose in PURPOSES else "document",
            content_type=fmt.content_type,
            size_bytes=staged.size,
            sha256=staged.sha256,
            original_filename=staged.filename,
            storage_backend=get_storage().name,
            storage_key="",
        )
        now = clock.now()
        media.storage_key = f"{now:%Y/%m}/{media.id}{fmt.extensions[0]}"
        session.add(media)
        await session.flush()
        await get_storage().put_file(media.storage_key, staged.path)
    finally:
        await anyio.Path(staged.path).unlink(missing_ok=True)
    return media


@dataclass(frozen=True)
class Version:
    """A public version made by the caller (already blurred): `w320`, `w1280`."""

    name: str
    content: bytes
    width: int
    height: int


@dataclass(frozen=True)
class SavedEvidence:
    """Files of a system evidence photo, written but not yet recorded (see
    `record_system_evidence`): writing files is slow, recording rows is quick, and on SQLite
    the database is locked from the first write of a transaction to its end."""

    media: MediaObject
    processing: MediaProcessing
    variants: tuple[MediaVariant, ...]


async def save_system_evidence(
    *,
    original: bytes,
    width: int,
    height: int,
    versions: list[Version],
    faces: int = 0,
    plates: int = 0,
) -> SavedEvidence:
    """Write the files of a JPEG the system recorded itself (a camera alert's snapshot): the
    original, and its public versions the caller made (faces and plates already blurred). A
    transaction that does not record them leaves unused files under unused ids, never rows
    without files."""
    media = MediaObject(
        owner_id=None,
        purpose=SYSTEM_EVIDENCE,
        content_type="image/jpeg",
        size_bytes=len(original),
        sha256=hashlib.sha256(original).hexdigest(),
        storage_backend=get_storage().name,
        storage_key="",
    )
    media.storage_key = f"{clock.now():%Y/%m}/{media.id}.jpg"
    await _put_bytes(media.storage_key, original)
    variants = []
    for version in versions:
        key = f"derived/{media.id}/{version.name}.jpg"
        await _put_bytes(key, version.content)
        variants.append(
            MediaVariant(
                media_id=media.id,
                name=version.name,
                content_type="image/jpeg",
                storage_key=key,
                width=version.width,
                height=version.height,
                size_bytes=len(version.content),
            )
        )
    processing = MediaProcessing(
        media_id=media.id,
        kind="photo",
        status="ready",
        width=width,
        height=height,
        faces=faces,
        plates=plates,
        processed_at=clock.now(),
    )
    return SavedEvidence(media, processing, tuple(variants))


async def record_system_evidence(session: AsyncSession, saved: SavedEvidence) -> MediaObject:
    """Record saved evidence as a photo with no owner account, ready at once (no processing is
    queued: its public versions exist). The original is served only through the audiences the
    attaching domain allows (staff); `withdraw_original` removes it when it must not be kept
    longer."""
    session.add(saved.media)
    await session.flush()  # the rows below refer to it (no ORM relationship orders them)
    session.add(saved.processing)
    session.add_all(saved.variants)
    await session.flush()
    return saved.media


async def store_system_evidence(
    session: AsyncSession,
    *,
    original: bytes,
    width: int,
    height: int,
    versions: list[Version],
    faces: int = 0,
    plates: int = 0,
) -> MediaObject:
    """`save_system_evidence` and `record_system_evidence` in one call."""
    saved = await save_system_evidence(
        original=original, width=width, height=height, versions=versions, faces=faces, plates=plates
    )
    return await record_system_evidence(session, saved)


async def _put_bytes(key: str, content: bytes) -> None:
    staged = new_staging_path()
    await anyio.Path(staged).write_bytes(content)
    await get_storage().put_file(key, staged)


async def withdraw_original(session: AsyncSession, media_ids: Iterable[uuid.UUID]) -> int:
    """Delete the originals of these system evidence files (their public versions stay); a link
    to an original then answers 404. Returns how many were still there."""
    rows = list(
        (
            await session.execute(
                sa.select(MediaObject).where(
                    col(MediaObject.id).in_(list(media_ids)),
                    col(MediaObject.owner_id).is_(None),
                    col(MediaObject.storage_key) != "",
                )
            )
        ).scalars()
    )
    for media in rows:
        await get_storage().delete(media.storage_key)
        media.storage_key, media.size_bytes = "", 0
    await session.flush()
    return len(rows)


async def get(session: AsyncSession, media_id: uuid.UUID) -> MediaObject | None:
    return await session.get(MediaObject, media_id)


async def get_many(
    session: AsyncSession, media_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, MediaObject]:
    ids = list(set(media_ids))
    if not ids:
        return {}
    rows = await session.execute(sa.select(MediaObject).where(col(MediaObject.id).in_(ids)))
    return {m.id: m for m in rows.scalars()}


async def get_owned(
    session: AsyncSession, media_ids: Iterable[uuid.UUID], owner_id: uuid.UUID
) -> dict[uuid.UUID, MediaObject]:
    """The subset of `media_ids` that `owner_id` uploaded (others simply are not returned)."""
    ids = list(set(media_ids))
    if not ids:
        return {}
    rows = await session.execute(
        sa.select(MediaObject).where(
            col(MediaObject.id).in_(ids), col(MediaObject.owner_id) == owner_id
        )
    )
    return {m.id: m for m in rows.scalars()}


async def hold(session: AsyncSession, media_ids: Iterable[uuid.UUID]) -> None:
    """Mark files a legally kept record refers to, so account erasure keeps them (they are
    attached, too: never purged as orphans)."""
    ids = list(set(media_ids))
    if ids:
        await session.execute(
            sa.update(MediaObject)
            .where(col(MediaObject.id).in_(ids))
            .values(
                legal_hold=True, attached_at=sa.func.coalesce(MediaObject.attached_at, clock.now())
            )
        )


async def mark_attached(session: AsyncSession, media_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """A record (a report, a dossier) took these files: they are no longer orphans. Returns the
    ids that still exist (an orphan purged meanwhile is not among them); on PostgreSQL this
    waits for a purge deleting one of them, and a purge waiting for this skips them."""
    ids = list(set(media_ids))
    if not ids:
        return set()
    now = clock.now()
    await session.execute(
        sa.update(MediaObject)
        .where(col(MediaObject.id).in_(ids), col(MediaObject.attached_at).is_(None))
        .values(attached_at=now)
    )
    found = await session.execute(
        sa.select(col(MediaObject.id)).where(col(MediaObject.id).in_(ids))
    )
    return set(found.scalars())


async def purge_orphans(session: AsyncSession, *, batch: int = 500) -> int:
    """Delete uploads no record took within MEDIA_ORPHAN_RETENTION_HOURS, with their files, and
    give their bytes back to the owners' quotas. A file attached meanwhile is left alone (the
    delete re-checks `attached_at` row by row)."""
    hours = get_media_settings().media_orphan_retention_hours
    cutoff = clock.now() - timedelta(hours=hours)
    candidates = (
        sa.select(col(MediaObject.id))
        .where(
            col(MediaObject.attached_at).is_(None),
            col(MediaObject.created_at) < cutoff,
            col(MediaObject.owner_id).is_not(None),
            col(MediaObject.legal_hold).is_(False),
        )
        .order_by(col(MediaObject.created_at))
        .limit(batch)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return 0
    gone = (
        await session.execute(
            sa.delete(MediaObject)
            .where(
                col(MediaObject.id).in_(ids),
                col(MediaObject.attached_at).is_(None),
                col(MediaObject.legal_hold).is_(False),
            )
            .returning(
                col(MediaObject.owner_id), col(MediaObject.size_bytes), col(MediaObject.storage_key)
            )
            .execution_options(synchronize_session=False)
        )
    ).all()
    freed: dict[uuid.UUID | None, int] = {}
    for owner_id, size, key in gone:
        freed[owner_id] = freed.get(owner_id, 0) + size
        if key:
            await get_storage().delete(key)
    for owner_id, size in freed.items():
        await quota.release(session, owner_id, size)
    return len(gone)


def content(media: MediaObject) -> AsyncIterator[bytes]:
    return get_storage().open(media.storage_key)


async def export_media(session: AsyncSession, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(sa.select(MediaObject).where(col(MediaObject.owner_id) == user_id))
    return [
        m.model_dump(mode="json", exclude={"storage_key", "storage_backend"})
        for m in rows.scalars()
    ]


async def erase_media(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    rows = list(
        (
            await session.execute(
                sa.select(MediaObject).where(
                    col(MediaObject.owner_id) == user_id, col(MediaObject.legal_hold).is_(False)
                )
            )
        ).scalars()
    )
    for media in rows:
        await get_storage().delete(media.storage_key)
        await quota.release(session, media.owner_id, media.size_bytes)
        await session.delete(media)
    await session.flush()
    held = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(MediaObject)
            .where(col(MediaObject.owner_id) == user_id, col(MediaObject.legal_hold).is_(True))
        )
    ).scalar_one()
    if not held:
        return []
    return [
        Retained(
            data=f"{held} documents attached to public-service dossiers",
            reason_vi=(
                "Tài liệu kèm hồ sơ thủ tục hành chính được lưu trữ theo quy định về lưu trữ."
            ),
            reason_en=(
                "Documents attached to administrative dossiers are archived as the law requires."
            ),
        )
    ]


def _register_personal_data() -> None:
    from app.core import personal_data

    personal_data.register("media", exporter=export_media, eraser=erase_media)


_register_personal_data()
