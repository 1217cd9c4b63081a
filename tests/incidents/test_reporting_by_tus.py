"""A citizen's whole path with a real tus client (tuspy) against a real server: a photo by
multipart, a video by tus cut off by the network and resumed with checksums, both in a report
that staff verify and the nearby feed then shows."""

from __future__ import annotations

import asyncio

import pytest

from tests.incidents.helpers import CENTRE, act, citizen, file_report, staff
from tests.support import media_samples as samples
from tests.support.flows import run_jobs, seed_wards
from tests.support.live import serve_on_this_loop

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture
async def live_server(app, db, monkeypatch):
    async with serve_on_this_loop(app, monkeypatch) as served:
        yield served


async def _cut_off_patch(port: int, path: str, token: str, total: int, pieces: list[bytes]) -> None:
    """A PATCH announcing `total` bytes whose connection drops after `pieces` went through."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: {OCTETS}\r\n"
        f"Content-Length: {total}\r\n\r\n"
    )
    writer.write(head.encode())
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        # The server shares this event loop: let it read and store the piece, as it would
        # over a slow mobile link, before the next one (bytes still in flight when a link
        # dies are lost, as on a real network).
        await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()


async def test_photo_by_multipart_and_video_by_tuspy_resumed_then_verified_and_found(
    client, db, live_server, tmp_path
):
    from tusclient import client as tus_client

    base, port = live_server
    await seed_wards(db)
    me = await citizen(client, db, "0912800020")
    officer = await staff(client, db, "0981800020", "TNG-PDP")
    photo = await client.post(
        "/api/v1/media",
        headers=me,
        files={"file": ("anh.jpg", samples.jpeg_with_gps(), "image/jpeg")},
    )
    clip = samples.video(seconds=2, fps=10)
    clip_path = tmp_path / "clip.mp4"
    clip_path.write_bytes(clip)
    tus = tus_client.TusClient(f"{base}/api/v1/uploads/", headers=me)

    # The phone starts the upload; the network drops a third of the way into the first PATCH.
    first = tus.uploader(str(clip_path), chunk_size=len(clip), metadata={"filename": "clip.mp4"})
    url = await asyncio.to_thread(first.create_url)
    path = url.removeprefix(base)
    token = me["Authorization"].split()[1]
    third = len(clip) // 3
    await _cut_off_patch(
        port, path, token, len(clip), [clip[: third // 2], clip[third // 2 : third]]
    )
    for _ in range(200):  # until the server has noticed the drop and saved what arrived
        offset = int((await client.head(path, headers={**me, **TUS})).headers["upload-offset"])
        if offset:
            break
        await asyncio.sleep(0.02)
    assert offset == third

    # Back online: the client asks where it was and sends the rest, with checksums.
    # tuspy is synchronous (requests): it runs in a thread, the server on this loop.
    resumed = await asyncio.to_thread(
        tus.uploader, str(clip_path), url=url, chunk_size=64 * 1024, upload_checksum=True
    )
    assert resumed.offset == offset
    await asyncio.to_thread(resumed.upload)
    head = await client.head(path, headers={**me, **TUS})
    video_id = head.headers["upload-media-id"]

    report = await file_report(
        client, me, CENTRE, category="accident", media_ids=[photo.json()["id"], video_id]
    )
    await run_jobs()
    await act(client, officer, report["id"], "verify")
    staff_list = (await client.get("/api/v1/staff/incidents", headers=officer)).json()
    assert [i["id"] for i in staff_list["items"]] == [report["id"]]

    items = (
        await client.get("/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()["items"]
    [found] = items
    assert [(m["kind"], m["ready"]) for m in found["media"]] == [("photo", True), ("video", True)]
    shown = await client.get(found["media"][0]["url"].removeprefix(base))
    assert b"Exif" not in shown.content and b"PhoneMaker" not in shown.content
    assert found["media"][1]["duration_s"] == 2.0
    video = await client.get(found["media"][1]["url"].removeprefix(base))
    assert video.status_code == 200 and video.content != clip
