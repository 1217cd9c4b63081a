"""The same storage tests against both backends: local files, and S3 through aiobotocore against
moto's S3 server (server mode, real HTTP on 127.0.0.1, a free port). A whole photo report with
MEDIA_STORAGE=s3: tests/incidents/test_report_on_s3.py."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.media.s3 import PART_BYTES, S3Storage
from app.media.storage import LocalStorage, StorageBackend
from tests.support.s3 import moto_server


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


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
