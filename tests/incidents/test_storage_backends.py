"""The same storage tests against both backends: local files, and S3 through aiobotocore against
moto's S3 server (server mode, real HTTP on 127.0.0.1, a free port). Then a whole photo report
with MEDIA_STORAGE=s3."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.media import storage as storage_module
from app.media.config import get_media_settings
from app.media.models import MediaObject
from app.media.s3 import PART_BYTES, S3Storage
from app.media.storage import LocalStorage, StorageBackend
from tests.incidents.helpers import CENTRE, act, citizen, file_report, staff
from tests.support import media_samples as samples
from tests.support.flows import run_jobs, seed_wards


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Keep botocore from looking for real credentials or regions anywhere.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_backend(endpoint: str, bucket: str) -> S3Storage:
    return S3Storage(
        endpoint_url=endpoint,
        bucket=bucket,
        region="ap-southeast-1",
        access_key_id="testing",
        secret_access_key="testing",
    )


@pytest.fixture(params=["local", "s3"])
async def backend(request, tmp_path: Path) -> StorageBackend:
    if request.param == "local":
        return LocalStorage(tmp_path / "media")
    endpoint = request.getfixturevalue("moto_endpoint")
    s3 = s3_backend(endpoint, f"test-{os.urandom(4).hex()}")
    await s3.ensure_bucket()
    return s3


def staged(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"staged-{os.urandom(4).hex()}.part"
    path.write_bytes(data)
    return path


async def read_all(backend: StorageBackend, key: str, chunk: int = 64 * 1024) -> bytes:
    return b"".join([piece async for piece in backend.open(key, chunk)])


async def test_a_file_goes_in_comes_back_and_is_deleted(backend, tmp_path):
    data = b"\x89PNG-ish " + os.urandom(5000)
    source = staged(tmp_path, data)

    await backend.put_file("2026/11/abc.png", source)

    assert not source.exists()  # the backend took the staging file
    assert await backend.exists("2026/11/abc.png")
    assert await read_all(backend, "2026/11/abc.png", chunk=777) == data
    await backend.delete("2026/11/abc.png")
    assert not await backend.exists("2026/11/abc.png")
    await backend.delete("2026/11/abc.png")  # deleting twice is harmless


async def test_a_large_file_round_trips_intact(backend, tmp_path):
    # More than one S3 multipart part.
    data = os.urandom(PART_BYTES + 1_234_567)

    await backend.put_file("big/video.mp4", staged(tmp_path, data))

    back = await read_all(backend, "big/video.mp4", chunk=1024 * 1024)
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()


async def test_keys_are_separate_and_overwrite_replaces(backend, tmp_path):
    await backend.put_file("a/1.jpg", staged(tmp_path, b"one"))
    await backend.put_file("a/2.jpg", staged(tmp_path, b"two"))
    await backend.put_file("a/1.jpg", staged(tmp_path, b"uno"))

    assert await read_all(backend, "a/1.jpg") == b"uno"
    assert await read_all(backend, "a/2.jpg") == b"two"
    assert not await backend.exists("a/3.jpg")


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
