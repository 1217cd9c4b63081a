"""One storage quota and one upload rate for every way a file comes in (multipart, tus), counted
atomically; uploads nothing took are purged after their retention."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from app.core import clock
from app.media import quota
from app.media import service as media_service
from app.media.config import get_media_settings
from app.media.models import MediaObject
from app.media.storage import get_storage
from tests.incidents.helpers import CENTRE, file_report
from tests.support.dossiers import Person, pdf_bytes, upload
from tests.support.flows import bearer, login
from tests.support.servers import two_server_processes

TUS = {"Tus-Resumable": "1.0.0"}
FILE = pdf_bytes(10_000)


async def used(db, person: Person) -> int:
    return await quota.used(db, uuid.UUID(person.id))


async def kept_bytes(db, person: Person) -> int:
    return (
        await db.execute(
            sa.select(sa.func.coalesce(sa.func.sum(MediaObject.size_bytes), 0)).where(
                MediaObject.owner_id == uuid.UUID(person.id)
            )
        )
    ).scalar_one()


async def tus_create(client, person: Person, length: int) -> httpx.Response:
    meta = "filename " + base64.b64encode(b"scan.pdf").decode()
    return await client.post(
        "/api/v1/uploads/",
        headers={**person.headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": meta},
    )


async def test_multipart_uploads_count_against_the_quota(
    client, db, owner: Person, monkeypatch
) -> None:
    monkeypatch.setattr(get_media_settings(), "media_quota_bytes", 2 * len(FILE) + 100)

    answers = [await upload(client, owner.headers, FILE) for _ in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 413]
    assert answers[2].json()["code"] == "media.quota_exceeded"
    assert await kept_bytes(db, owner) == await used(db, owner) == 2 * len(FILE)


async def test_multipart_and_tus_share_one_quota(client, db, owner: Person, monkeypatch) -> None:
    monkeypatch.setattr(get_media_settings(), "media_quota_bytes", 2 * len(FILE) + 100)
    assert (await upload(client, owner.headers, FILE)).status_code == 201

    reserved = await tus_create(client, owner, len(FILE))
    over = await tus_create(client, owner, 200)
    after_tus = await upload(client, owner.headers, FILE)

    assert reserved.status_code == 201, reserved.text
    assert over.status_code == after_tus.status_code == 413
    assert after_tus.json()["code"] == "media.quota_exceeded"
    # Ending the unfinished upload gives its bytes back: a multipart upload fits again.
    location = reserved.headers["location"].split("/api/v1/uploads/")[1]
    gone = await client.delete(f"/api/v1/uploads/{location}", headers={**owner.headers, **TUS})
    assert gone.status_code == 204
    assert (await upload(client, owner.headers, FILE)).status_code == 201
    assert await used(db, owner) == await kept_bytes(db, owner) == 2 * len(FILE)


async def test_a_refused_file_costs_no_quota(client, db, owner: Person, monkeypatch) -> None:
    monkeypatch.setattr(get_media_settings(), "media_quota_bytes", len(FILE) + 100)

    refused = await upload(client, owner.headers, FILE[:-20])  # truncated: no %%EOF

    assert refused.json()["code"] == "media.corrupt"
    assert await used(db, owner) == 0
    assert (await upload(client, owner.headers, FILE)).status_code == 201


async def test_uploads_are_rate_limited_per_account_every_way_in(
    client, db, owner: Person, stranger: Person, monkeypatch
) -> None:
    monkeypatch.setattr(get_media_settings(), "media_uploads_per_hour", 3)

    answers = [await upload(client, owner.headers, FILE) for _ in range(3)]
    limited = await upload(client, owner.headers, FILE)
    tus_limited = await tus_create(client, owner, 100)
    other = await upload(client, stranger.headers, FILE)

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert limited.status_code == tus_limited.status_code == 429
    assert limited.json()["code"] == "request.rate_limited"
    assert other.status_code == 201  # per account
    assert await kept_bytes(db, owner) == 3 * len(FILE)
    staging = get_media_settings().media_dir / "staging"
    assert list(staging.glob("*")) == []  # the refused body left nothing behind


async def test_erasing_files_gives_their_bytes_back(client, db, owner: Person) -> None:
    assert (await upload(client, owner.headers, FILE)).status_code == 201
    assert await used(db, owner) == len(FILE)

    await media_service.erase_media(db, uuid.UUID(owner.id))

    assert await used(db, owner) == 0


# ---------------------------------------------------------------- orphans


async def test_uploads_never_attached_are_purged_after_their_retention(
    client, db, owner: Person
) -> None:
    orphan = (await upload(client, owner.headers, FILE)).json()["id"]
    photo = (
        await client.post(
            "/api/v1/media", headers=owner.headers, files={"file": ("anh.png", _png(), "image/png")}
        )
    ).json()["id"]
    await file_report(client, owner.headers, CENTRE, media_ids=[photo])
    held = (await upload(client, owner.headers, FILE)).json()["id"]
    await media_service.hold(db, [uuid.UUID(held)])  # a dossier took it
    await db.commit()
    recent_age = get_media_settings().media_orphan_retention_hours - 1
    clock.advance(timedelta(hours=recent_age))
    again = bearer(await login(client, "0912345678"))  # a week later: a new sign-in
    fresh = (await upload(client, again, FILE)).json()["id"]
    key = (await db.get(MediaObject, uuid.UUID(orphan))).storage_key
    before = await used(db, owner)

    clock.advance(timedelta(hours=2))
    purged = await media_service.purge_orphans(db)
    await db.commit()

    assert purged == 1
    remaining = set((await db.execute(sa.select(MediaObject.id))).scalars())
    assert remaining == {uuid.UUID(photo), uuid.UUID(held), uuid.UUID(fresh)}
    assert not await get_storage().exists(key)
    for taken in (photo, held):
        assert (await db.get(MediaObject, uuid.UUID(taken))).attached_at is not None
    assert await used(db, owner) == before - len(FILE) == await kept_bytes(db, owner)
    # Its id attaches to nothing any more.
    late = await file_report(
        client,
        bearer(await login(client, "0912345678")),
        CENTRE,
        category="accident",
        media_ids=[orphan],
        expect=422,
    )
    assert late["code"] == "incident.media_invalid"


async def test_the_purge_is_a_periodic_job() -> None:
    from app.core.jobs import PERIODIC
    from app.main import DOMAIN_TASK_MODULES

    assert "app.media.tasks" in DOMAIN_TASK_MODULES
    import app.media.tasks  # noqa: F401

    assert PERIODIC["media.purge_orphans"].every == timedelta(hours=1)


def _png() -> bytes:
    from tests.support.dossiers import png_bytes

    return png_bytes()


# ---------------------------------------------------------------- under concurrency


async def test_concurrent_uploads_across_two_servers_cannot_pass_the_quota(
    client, db, owner: Person, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    fits = 3
    limit = fits * len(FILE) + len(FILE) // 2

    with two_server_processes({"MEDIA_QUOTA_BYTES": str(limit)}) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/media",
                        headers=owner.headers,
                        files={"file": (f"scan-{n}.pdf", FILE, "application/pdf")},
                    )
                    for n in range(16)
                )
            )
            tus = await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/uploads/",
                        headers={**owner.headers, **TUS, "Upload-Length": str(len(FILE))},
                    )
                    for _ in range(8)
                )
            )

    seen = Counter(a.status_code for a in [*answers, *tus])
    assert seen == {201: fits, 413: 24 - fits}, seen
    # Kept files and unfinished uploads together: exactly what fits, never more.
    unfinished = sum(1 for a in tus if a.status_code == 201) * len(FILE)
    assert await kept_bytes(db, owner) + unfinished == fits * len(FILE) <= limit
    assert await used(db, owner) == fits * len(FILE)


async def test_a_file_attached_while_the_purge_runs_is_kept(
    client, db, owner: Person, backend: str
) -> None:
    """The purge re-checks `attached_at` row by row: a report that takes an old upload at the
    moment the purge deletes it keeps it (PostgreSQL row locks; SQLite serialises writers)."""
    if backend != "postgresql":
        pytest.skip("row locks between two transactions are a PostgreSQL property")
    from app.core.db import session_factory

    media_id = uuid.UUID((await upload(client, owner.headers, FILE)).json()["id"])
    clock.advance(timedelta(hours=get_media_settings().media_orphan_retention_hours + 1))
    sessions = session_factory()
    async with sessions() as attaching, sessions() as purging:
        assert await media_service.mark_attached(attaching, [media_id]) == {media_id}
        purge = asyncio.create_task(media_service.purge_orphans(purging))
        await asyncio.sleep(0.5)
        assert not purge.done()  # waiting for the attaching transaction
        await attaching.commit()
        assert await asyncio.wait_for(purge, 10) == 0
        await purging.commit()

    assert (await db.get(MediaObject, media_id, populate_existing=True)) is not None
    assert await used(db, owner) == len(FILE)
