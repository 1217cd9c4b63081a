"""A whole photo report with MEDIA_STORAGE=s3 (moto's S3 server): stored on S3, processed by
the worker, shown blurred in the nearby feed, served with byte ranges."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from app.media import storage as storage_module
from app.media.config import get_media_settings
from app.media.models import MediaObject
from app.media.s3 import S3Storage
from tests.incidents.helpers import CENTRE, act, citizen, file_report, staff
from tests.support import media_samples as samples
from tests.support.flows import run_jobs, seed_wards
from tests.support.s3 import moto_server


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


async def test_a_report_with_media_on_s3(client, db, moto_endpoint, monkeypatch):
    bucket = f"reports-{os.urandom(4).hex()}"
    settings = get_media_settings()
    for name, value in (
        ("media_storage", "s3"),
        ("media_s3_endpoint_url", moto_endpoint),
        ("media_s3_bucket", bucket),
        ("media_s3_access_key_id", "testing"),
        ("media_s3_secret_access_key", "testing"),
    ):
        monkeypatch.setattr(settings, name, value)
    monkeypatch.setattr(storage_module, "_backend", None)
    s3 = storage_module.get_storage()
    assert isinstance(s3, S3Storage)
    await s3.ensure_bucket()
    await seed_wards(db)
    me = await citizen(client, db, "0912900001")
    officer = await staff(client, db, "0981900001", "TNG-PDP")
    photo = samples.jpeg_with_gps()

    upload = await client.post(
        "/api/v1/media", headers=me, files={"file": ("anh.jpg", photo, "image/jpeg")}
    )
    stored = await db.get(MediaObject, uuid.UUID(upload.json()["id"]))
    assert stored.storage_backend == "s3"
    assert await s3.exists(stored.storage_key)
    report = await file_report(client, me, CENTRE, media_ids=[upload.json()["id"]])
    await run_jobs()
    await act(client, officer, report["id"], "verify")

    items = (
        await client.get("/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()["items"]
    [media] = items[0]["media"]
    assert media["ready"]
    url = media["url"].split("://", 1)[1].split("/", 1)[1]
    shown = await client.get("/" + url)
    assert shown.status_code == 200 and b"Exif" not in shown.content
    ranged = await client.get("/" + url, headers={"Range": "bytes=2-11"})
    assert ranged.status_code == 206 and ranged.content == shown.content[2:12]
    tail = await client.get("/" + url, headers={"Range": "bytes=-5"})
    assert tail.content == shown.content[-5:]
    monkeypatch.setattr(storage_module, "_backend", None)
