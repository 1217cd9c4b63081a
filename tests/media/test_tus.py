"""tus 1.0 resumable uploads at /api/v1/uploads/: the protocol's answers, its bad inputs, one
writer per upload across server processes, a body that goes silent. (A citizen's whole path with
the tuspy client, ending in an incident report: tests/incidents/test_reporting_by_tus.py.)"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.core import clock
from app.core.config import PROJECT_ROOT
from app.media import tus_service
from app.media.config import get_media_settings
from app.media.models import MediaObject, TusUpload
from tests.conftest import count
from tests.media.helpers import citizen
from tests.support import media_samples as samples
from tests.support.flows import run_jobs
from tests.support.live import serve_on_this_loop

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def create(client, headers, length: int, **extra) -> str:
    response = await client.post(
        "/api/v1/uploads/",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": meta(filename="clip.mp4", filetype="video/mp4"),
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[1]


async def patch(client, headers, upload_id: str, offset: int, body: bytes, **extra):
    return await client.patch(
        f"/api/v1/uploads/{upload_id}",
        content=body,
        headers={**headers, **TUS, "Upload-Offset": str(offset), "Content-Type": OCTETS, **extra},
    )


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


async def test_options_announce_version_extensions_size_and_algorithms(client, db):
    response = await client.options("/api/v1/uploads/")

    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert response.headers["tus-max-size"] == str(500 * 1024 * 1024)
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


async def test_chunks_with_checksums_make_a_media_object(client, db):
    me = await citizen(client, db, "0912800001")
    clip = samples.video(seconds=1)
    upload_id = await create(client, me, len(clip))
    half = len(clip) // 2

    first = await patch(
        client, me, upload_id, 0, clip[:half], **{"Upload-Checksum": checksum("sha1", clip[:half])}
    )
    head = await client.head(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    last = await patch(
        client,
        me,
        upload_id,
        half,
        clip[half:],
        **{"Upload-Checksum": checksum("sha256", clip[half:])},
    )

    assert first.status_code == 204 and first.headers["upload-offset"] == str(half)
    assert head.headers["upload-offset"] == str(half)
    assert head.headers["upload-length"] == str(len(clip))
    assert "GMT" in head.headers["upload-expires"] and head.headers["cache-control"] == "no-store"
    assert last.status_code == 204 and last.headers["upload-offset"] == str(len(clip))
    media = await db.get(MediaObject, uuid.UUID(last.headers["upload-media-id"]))
    assert media.content_type == "video/mp4" and media.size_bytes == len(clip)
    assert media.sha256 == hashlib.sha256(clip).hexdigest()


async def test_creation_with_upload_takes_the_first_chunk_in_the_post(client, db):
    me = await citizen(client, db, "0912800002")
    photo = samples.encode(samples.scene(), ".jpg")

    response = await client.post(
        "/api/v1/uploads/",
        content=photo,
        headers={**me, **TUS, "Upload-Length": str(len(photo)), "Content-Type": OCTETS},
    )

    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(photo))
    assert response.headers["upload-media-id"]


async def test_a_patch_at_the_wrong_offset_is_409(client, db):
    me = await citizen(client, db, "0912800003")
    upload_id = await create(client, me, 100)
    await patch(client, me, upload_id, 0, b"x" * 10)

    response = await patch(client, me, upload_id, 5, b"y" * 10)

    assert response.status_code == 409
    assert response.json()["code"] == "media.upload_offset_mismatch"
    assert response.headers["upload-offset"] == "10"
    assert response.headers["tus-resumable"] == "1.0.0"


async def test_a_wrong_checksum_is_460_and_the_chunk_is_discarded(client, db):
    me = await citizen(client, db, "0912800004")
    upload_id = await create(client, me, 100)

    wrong = await patch(
        client, me, upload_id, 0, b"a" * 10, **{"Upload-Checksum": checksum("sha1", b"b" * 10)}
    )
    unknown = await patch(client, me, upload_id, 0, b"a" * 10, **{"Upload-Checksum": "md5 AAAA"})
    head = await client.head(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})

    assert wrong.status_code == 460 and wrong.json()["code"] == "media.checksum_mismatch"
    assert unknown.status_code == 400
    assert head.headers["upload-offset"] == "0"
    assert tus_service.part_path(uuid.UUID(upload_id)).stat().st_size == 0


async def test_bytes_past_the_declared_length_are_refused(client, db):
    me = await citizen(client, db, "0912800005")
    upload_id = await create(client, me, 10)

    response = await patch(client, me, upload_id, 0, b"z" * 11)

    assert response.status_code == 413
    assert response.json()["code"] == "media.upload_past_length"
    head = await client.head(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    assert head.headers["upload-offset"] == "0"


async def test_someone_elses_upload_is_404_for_every_method(client, db):
    me = await citizen(client, db, "0912800006")
    other = await citizen(client, db, "0912800007")
    upload_id = await create(client, me, 10)
    url = f"/api/v1/uploads/{upload_id}"

    assert (await client.head(url, headers={**other, **TUS})).status_code == 404
    assert (await patch(client, other, upload_id, 0, b"x")).status_code == 404
    assert (await client.delete(url, headers={**other, **TUS})).status_code == 404
    assert (await client.head(url, headers={**me, **TUS})).status_code == 200


async def test_bad_creation_requests(client, db, monkeypatch):
    from app.media.config import get_media_settings

    me = await citizen(client, db, "0912800008")
    base = {**me, **TUS}
    no_version = await client.post("/api/v1/uploads/", headers={**me, "Upload-Length": "5"})
    no_length = await client.post("/api/v1/uploads/", headers=base)
    too_big = await client.post(
        "/api/v1/uploads/", headers={**base, "Upload-Length": str(501 * 1024 * 1024)}
    )
    bad_meta = await client.post(
        "/api/v1/uploads/",
        headers={**base, "Upload-Length": "5", "Upload-Metadata": "filename not-base64!"},
    )
    anonymous = await client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "5"})
    monkeypatch.setattr(get_media_settings(), "media_quota_bytes", 1000)
    await create(client, me, 600)
    over_quota = await client.post("/api/v1/uploads/", headers={**base, "Upload-Length": "600"})

    assert no_version.status_code == 412 and no_version.headers["tus-version"] == "1.0.0"
    assert no_length.status_code == 400
    assert too_big.status_code == 413 and too_big.json()["code"] == "media.tus_too_large"
    assert bad_meta.status_code == 400
    assert anonymous.status_code == 401
    assert over_quota.status_code == 413 and over_quota.json()["code"] == "media.quota_exceeded"


async def test_termination_removes_the_upload_and_its_bytes(client, db):
    me = await citizen(client, db, "0912800009")
    upload_id = await create(client, me, 100)
    await patch(client, me, upload_id, 0, b"x" * 40)

    response = await client.delete(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})

    assert response.status_code == 204
    assert not tus_service.part_path(uuid.UUID(upload_id)).exists()
    assert (
        await client.head(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    ).status_code == 404


async def test_termination_while_a_patch_writes_is_refused_and_keeps_the_bytes(client, db):
    me = await citizen(client, db, "0912800011")
    upload_id = await create(client, me, 100)
    await patch(client, me, upload_id, 0, b"x" * 40)
    part = tus_service.part_path(uuid.UUID(upload_id))
    writer = os.open(part, os.O_RDWR)  # the lock a PATCH holds, say on another server process
    try:
        fcntl.flock(writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = await client.delete(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    finally:
        os.close(writer)

    assert refused.status_code == 423, refused.text
    assert refused.json()["code"] == "media.upload_locked"
    assert part.read_bytes() == b"x" * 40
    head = await client.head(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    assert head.headers["upload-offset"] == "40"
    # The writer done, the termination goes through.
    response = await client.delete(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    assert response.status_code == 204
    assert not part.exists()


async def test_unfinished_uploads_expire_after_a_day(client, db):
    me = await citizen(client, db, "0912800010")
    upload_id = await create(client, me, 100)
    finished = samples.encode(samples.scene(), ".png")
    done_id = await create(
        client, me, len(finished), **{"Upload-Metadata": meta(filename="anh.png")}
    )
    done = await patch(client, me, done_id, 0, finished)
    assert done.status_code == 204, done.text

    clock.advance(timedelta(hours=24, minutes=1))
    await run_jobs()

    assert not tus_service.part_path(uuid.UUID(upload_id)).exists()
    rows = (await db.execute(sa.select(TusUpload.id))).scalars().all()
    assert [str(r) for r in rows] == [done_id]  # the finished one stays on record


async def test_a_refused_file_at_the_end_of_an_upload_is_removed(client, db):
    me = await citizen(client, db, "0912800011")
    fake = b"GIF89a" + b"\x00" * 50
    upload_id = await create(client, me, len(fake))

    response = await patch(client, me, upload_id, 0, fake)

    assert response.status_code == 415 and response.json()["code"] == "media.unsupported_type"
    assert await count(db, TusUpload) == 0 and await count(db, MediaObject) == 0
    assert not tus_service.part_path(uuid.UUID(upload_id)).exists()


async def test_a_large_patch_streams_without_holding_the_file_in_memory(client, db, monkeypatch):
    me = await citizen(client, db, "0912800012")
    size, chunk = 24 * 1024 * 1024, 256 * 1024
    upload_id = await create(client, me, size + 1)  # one byte short: stays an upload

    async def body():
        block = b"\x5a" * chunk
        for _ in range(size // chunk):
            yield block

    tracemalloc.start()
    try:
        response = await client.patch(
            f"/api/v1/uploads/{upload_id}",
            content=body(),
            headers={**me, **TUS, "Upload-Offset": "0", "Content-Type": OCTETS},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 204, response.text
    assert response.headers["upload-offset"] == str(size)
    assert peak < 4 * 1024 * 1024  # a few chunks, not the 24 MiB body


# ---------------------------------------------------------------- two server processes


@pytest.fixture
def second_process(database_url: str, tmp_root: Path) -> Iterator[str]:
    """The same app in another server process (uvicorn), on the same database and media folder,
    as a second `--workers` process would be."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_root / f"tus-second-process-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the second server exited ({process.returncode})"
            assert time.monotonic() < deadline, "gave up waiting for the second server"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.slow
async def test_two_patches_of_one_upload_on_two_processes_never_interleave(
    client, db, second_process
):
    me = await citizen(client, db, "0912800030")
    size = 3 * 1024 * 1024
    upload_id = await create(client, me, 2 * size + 1)  # stays an upload: no media judging
    part = tus_service.part_path(uuid.UUID(upload_id))
    go_on = asyncio.Event()

    async def slow_phone():
        yield b"\xaa" * (size // 2)
        await go_on.wait()
        yield b"\xaa" * (size - size // 2)

    async with httpx.AsyncClient(base_url=second_process, timeout=30) as other:
        # A phone's PATCH on the other process, stalled mid-body on a weak network.
        first = asyncio.create_task(
            other.patch(
                f"/api/v1/uploads/{upload_id}",
                content=slow_phone(),
                headers={**me, **TUS, "Upload-Offset": "0", "Content-Type": OCTETS},
            )
        )
        for _ in range(500):  # until its first bytes are on disk: it holds the upload
            if part.stat().st_size:
                break
            await asyncio.sleep(0.02)
        assert part.stat().st_size > 0

        # The same chunk again, from a retrying client, reaching this process meanwhile.
        second = await patch(client, me, upload_id, 0, b"\xbb" * size)
        go_on.set()
        first_answer = await first

    assert second.status_code == 423, second.text
    assert second.json()["code"] == "media.upload_locked"
    assert first_answer.status_code == 204, first_answer.text
    assert first_answer.headers["upload-offset"] == str(size)
    assert part.read_bytes() == b"\xaa" * size
    # The lock went with the first PATCH: the retry goes on from where HEAD says.
    head = await client.head(f"/api/v1/uploads/{upload_id}", headers={**me, **TUS})
    assert head.headers["upload-offset"] == str(size)
    retried = await patch(client, me, upload_id, size, b"\xbb" * size)
    assert retried.status_code == 204 and retried.headers["upload-offset"] == str(2 * size)
    assert part.read_bytes() == b"\xaa" * size + b"\xbb" * size


# ---------------------------------------------------------------- over a real socket


@pytest.fixture
async def live_server(app, db, monkeypatch):
    async with serve_on_this_loop(app, monkeypatch) as served:
        yield served


async def test_a_patch_whose_body_goes_silent_keeps_what_arrived_and_frees_the_upload(
    client, db, live_server, monkeypatch
):
    _base, port = live_server
    monkeypatch.setattr(get_media_settings(), "media_tus_idle_timeout_seconds", 0.5)
    me = await citizen(client, db, "0912800031")
    upload_id = await create(client, me, 1001)  # stays an upload
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    token = me["Authorization"].split()[1]
    writer.write(
        (
            f"PATCH /api/v1/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: 0\r\nContent-Type: {OCTETS}\r\n"
            f"Content-Length: 1000\r\n\r\n"
        ).encode()
        + b"\xaa" * 400
    )
    await writer.drain()

    try:
        # The phone goes silent without closing the connection: the server answers on its own.
        answer = (await asyncio.wait_for(reader.read(4096), timeout=15)).lower()
        retried = await patch(client, me, upload_id, 400, b"\xbb" * 600)
    finally:
        writer.close()

    assert answer.startswith(b"http/1.1 204") and b"upload-offset: 400" in answer
    assert retried.status_code == 204, retried.text  # not 423: the lock was let go
    assert retried.headers["upload-offset"] == "1000"
    part = tus_service.part_path(uuid.UUID(upload_id))
    assert part.read_bytes() == b"\xaa" * 400 + b"\xbb" * 600
