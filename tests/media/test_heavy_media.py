"""Files crafted to eat the worker: refused from their headers, before their pixels or frames are
decoded, and bounded while decoding when the header lies."""

from __future__ import annotations

import functools
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from app.core.errors import AppError
from app.media import inspect, processing
from app.media.config import get_media_settings
from tests.support import media_samples as samples
from tests.support.dossiers import Person, upload


@functools.cache
def flat_png(side: int = 7000) -> bytes:
    """7000 x 7000 black pixels in about 143 KB: 147 MB once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + side * 3)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


async def test_a_flat_7000_px_png_is_refused_at_upload(client, owner: Person) -> None:
    bomb = flat_png()
    assert len(bomb) < 150_000

    response = await upload(client, owner.headers, bomb, "anh.png", "image/png")

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "media.compression_too_high"
    assert response.json()["pixels"] == 49_000_000


def test_the_worker_refuses_a_flat_png_without_decoding_it(tmp_path, monkeypatch) -> None:
    source = tmp_path / "bomb.png"
    source.write_bytes(flat_png())

    def never(*_args):
        raise AssertionError("decoded")

    monkeypatch.setattr(inspect, "decode_photo", never)
    monkeypatch.setattr(processing, "decode_photo", never)
    with pytest.raises(AppError) as refused:
        inspect.inspect_file(source, "image/png", deep=True)

    assert refused.value.error.code == "media.compression_too_high"


def test_judging_a_flat_png_costs_no_memory(tmp_path) -> None:
    """Measured in a fresh process: the peak memory does not move by the 147 MB of pixels."""
    source = tmp_path / "bomb.png"
    source.write_bytes(flat_png())
    script = (
        "import json, resource, sys\n"
        "from app.media import inspect\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    inspect.inspect_file(__import__('pathlib').Path(sys.argv[1]), 'image/png')\n"
        "    code = None\n"
        "except Exception as exc:\n"
        "    code = exc.error.code\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'code': code, 'kib': after - before}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(source)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result["code"] == "media.compression_too_high"
    assert result["kib"] < 20 * 1024


def test_a_real_photo_of_many_pixels_still_passes(tmp_path) -> None:
    photo = tmp_path / "anh.jpg"
    photo.write_bytes(samples.encode(samples.scene(2800, 2100), ".jpg"))  # 5.9 MP, a real scene

    probe = inspect.inspect_file(photo, "image/jpeg", deep=True)

    assert probe is not None and (probe.width, probe.height) == (2800, 2100)


async def test_a_video_declaring_60000_fps_is_refused_at_upload(client, owner: Person) -> None:
    clip = samples.video(seconds=0.005, fps=60_000, size=(64, 48))  # 300 frames in 5 ms

    response = await upload(client, owner.headers, clip, "clip.mp4", "video/mp4")

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "media.video_too_heavy" and body["reason"] == "frame_rate"


async def test_a_video_of_too_many_frames_is_refused_at_upload(
    client, owner: Person, monkeypatch
) -> None:
    monkeypatch.setattr(get_media_settings(), "media_max_video_frames", 50)
    clip = samples.video(seconds=10, fps=10, size=(64, 48))

    response = await upload(client, owner.headers, clip, "clip.mp4", "video/mp4")

    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["reason"]) == (
        "media.video_too_heavy",
        "frame_count",
    )


async def test_a_video_of_oversized_frames_is_refused_at_upload(
    client, owner: Person, monkeypatch
) -> None:
    monkeypatch.setattr(get_media_settings(), "media_max_video_frame_pixels", 100_000)
    clip = samples.video(seconds=0.5, fps=10, size=(640, 480))

    response = await upload(client, owner.headers, clip, "clip.mp4", "video/mp4")

    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["reason"]) == (
        "media.video_too_heavy",
        "frame_size",
    )


def lying_probe(real, **lies):
    def probe(path):
        found = real(path)
        return inspect.Probe(
            "video",
            found.width,
            found.height,
            **{"duration_s": found.duration_s, "fps": found.fps, "frames": found.frames, **lies},
        )

    return probe


def test_a_video_whose_header_lies_about_its_frames_is_cut_off_while_decoding(
    tmp_path, monkeypatch
) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(samples.video(seconds=30, fps=10, size=(64, 48)))  # 300 frames
    monkeypatch.setattr(processing, "probe_video", lying_probe(inspect.probe_video, frames=5))
    written = []
    real_write = processing.cv2.VideoWriter.write
    monkeypatch.setattr(
        processing.cv2.VideoWriter,
        "write",
        lambda self, frame: (written.append(1), real_write(self, frame))[1],
    )

    with pytest.raises(AppError) as refused:
        processing.process(source, "video/mp4", "video", tmp_path / "out")

    assert (refused.value.error.code, refused.value.extra["reason"]) == (
        "media.video_too_heavy",
        "frame_count",
    )
    assert len(written) < 40


def test_a_video_is_judged_on_its_decoded_duration(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(get_media_settings(), "media_max_video_seconds", 1)
    source = tmp_path / "clip.mp4"
    source.write_bytes(samples.video(seconds=3, fps=10, size=(64, 48)))
    # The header says half a second; the frames' timestamps run to three seconds.
    monkeypatch.setattr(processing, "probe_video", lying_probe(inspect.probe_video, duration_s=0.5))

    with pytest.raises(AppError) as refused:
        processing.process(source, "video/mp4", "video", tmp_path / "out")

    assert refused.value.error.code == "media.video_too_long"


async def test_a_bomb_that_reached_storage_fails_in_the_worker_undecoded(
    client, db, monkeypatch
) -> None:
    """Whatever let it in (an older server, a lower limit then), the worker judges the stored
    file from its header before decoding it."""
    import uuid

    from app.media.models import MediaObject, MediaProcessing
    from app.media.storage import get_storage
    from tests.incidents.helpers import CENTRE, citizen, file_report
    from tests.support.flows import run_jobs, seed_wards

    await seed_wards(db)
    reporter = await citizen(client, db, "0912620001")
    response = await upload(
        client, reporter, samples.encode(samples.scene(), ".png"), "a.png", "image/png"
    )
    media_id = uuid.UUID(response.json()["id"])
    stored = await db.get(MediaObject, media_id)
    get_storage().path(stored.storage_key).write_bytes(flat_png())

    def never(*_args):
        raise AssertionError("decoded")

    monkeypatch.setattr(inspect, "decode_photo", never)
    monkeypatch.setattr(processing, "decode_photo", never)
    await file_report(client, reporter, CENTRE, media_ids=[str(media_id)])
    await run_jobs()

    state = await db.get(MediaProcessing, media_id, populate_existing=True)
    assert (state.status, state.error_code) == ("failed", "media.compression_too_high")
