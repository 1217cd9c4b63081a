"""Photos and videos judged by their bytes on upload (WebP, HEIC, MP4, MOV, 3GP; truncated files,
polyglots, decompression bombs, wrong names refused with a clear code), and a HEIC photo
processed into blurred public versions."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.media.helpers import citizen
from tests.support import media_samples as samples


async def upload(client, headers, content: bytes, filename: str, content_type: str):
    return await client.post(
        "/api/v1/media", headers=headers, files={"file": (filename, content, content_type)}
    )


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("make", "filename", "declared", "detected"),
    [
        (lambda: samples.encode(samples.scene(), ".webp"), "a.webp", "image/webp", "image/webp"),
        (samples.heic, "IMG_0001.HEIC", "image/heic", "image/heic"),
        (lambda: samples.video(ext=".mov"), "clip.mov", "video/quicktime", "video/quicktime"),
        (lambda: samples.video(ext=".3gp"), "clip.3gp", "video/3gpp", "video/3gpp"),
        (samples.video, "clip", "application/octet-stream", "video/mp4"),
    ],
)
async def test_photo_and_video_formats_are_recognised_by_their_bytes(
    client, db, make, filename, declared, detected
):
    me = await citizen(client, db, "0912600010")

    response = await upload(client, me, make(), filename, declared)

    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == detected


@pytest.mark.parametrize(
    ("make", "filename", "code"),
    [
        # Truncated: the last box runs past the end of the file.
        (lambda: samples.video()[:-100], "clip.mp4", "media.corrupt"),
        # A polyglot: a ZIP archive glued after a valid video.
        (lambda: samples.video() + b"PK\x03\x04" + b"\x00" * 60, "clip.mp4", "media.corrupt"),
        (lambda: samples.encode(samples.scene(), ".webp")[:-10], "a.webp", "media.corrupt"),
        (lambda: samples.heic()[:-50], "a.heic", "media.corrupt"),
        # A decompression bomb: tiny file, ten billion pixels announced.
        (lambda: png_claiming(100_000, 100_000), "bomb.png", "media.too_many_pixels"),
        (lambda: b"GIF89a" + b"\x00" * 100, "a.gif", "media.unsupported_type"),
        (lambda: b"just some text, honestly a jpeg", "a.jpg", "media.unsupported_type"),
        (lambda: samples.video(fourcc="MJPG", ext=".avi"), "a.avi", "media.unsupported_type"),
        # Bytes of a video, named as a photo.
        (samples.video, "anh.jpg", "media.type_mismatch"),
    ],
)
async def test_refused_files_get_a_clear_code(client, db, make, filename, code):
    me = await citizen(client, db, "0912600011")

    response = await upload(client, me, make(), filename, "application/octet-stream")

    assert response.json()["code"] == code, response.text


async def test_a_video_over_the_maximum_duration_is_refused(client, db, monkeypatch):
    from app.media.config import get_media_settings

    monkeypatch.setattr(get_media_settings(), "media_max_video_seconds", 1.5)
    me = await citizen(client, db, "0912600012")

    response = await upload(client, me, samples.video(seconds=2), "clip.mp4", "video/mp4")

    assert response.status_code == 422
    assert response.json()["code"] == "media.video_too_long"
    assert response.json()["duration_s"] == 2.0


def test_a_heic_photo_is_processed_like_any_other(tmp_path):
    from app.media import processing

    source = tmp_path / "IMG_0001.HEIC"
    source.write_bytes(samples.heic())

    result = processing.process(source, "image/heic", "photo", tmp_path / "out")

    assert (result.width, result.height) == (640, 480)
    assert result.plates >= 1 and result.faces >= 1
    w1280 = next(o for o in result.outputs if o.name == "w1280")
    public = w1280.path.read_bytes()
    assert public[:3] == b"\xff\xd8\xff" and b"Exif" not in public
    x, y, w, h = samples.PLATE_BOX
    before = samples.sharpness(samples.scene()[y : y + h, x : x + w])
    assert samples.sharpness(samples.decode(public)[y : y + h, x : x + w]) < before * 0.05
