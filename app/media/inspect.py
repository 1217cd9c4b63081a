"""Judge a whole photo or video file before it is kept: structure, pixel count, decodability,
duration. Runs in a worker thread (`check`), never on the event loop.

- ISO-BMFF (MP4, MOV, 3GP, HEIC): the top-level boxes must tile the file exactly, so a truncated
  file or one with something appended (a polyglot) is refused.
- WebP: the RIFF length must match the file length.
- Pixel limit from the header, before decoding (decompression bombs never get decoded).
- Photos must decode; videos must open, yield a frame and be within the maximum duration.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from app.core.errors import AppError
from app.media import errors
from app.media.config import get_media_settings
from app.media.formats import BMFF_TYPES, PHOTO_TYPES, VIDEO_TYPES


@dataclass(frozen=True)
class Probe:
    kind: str  # photo | video
    width: int
    height: int
    duration_s: float | None = None
    fps: float | None = None
    frames: int | None = None


class Corrupt(Exception):
    pass


def _bmff_boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level box; raises Corrupt unless they tile the file."""
    total = path.stat().st_size
    boxes = []
    with path.open("rb") as handle:
        offset = 0
        while offset < total:
            if total - offset < 8:
                raise Corrupt("trailing bytes after the last box")
            handle.seek(offset)
            header = handle.read(16)
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                if len(header) < 16:
                    raise Corrupt("short large-size header")
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = total - offset
            if size < 8 or offset + size > total:
                raise Corrupt("box runs past the end of the file")
            if not all(32 <= b < 127 for b in kind):
                raise Corrupt("box type is not ASCII")
            boxes.append((kind, offset, size))
            offset += size
    return boxes


def _check_bmff(path: Path, content_type: str) -> None:
    kinds = {k for k, _, _ in _bmff_boxes(path)}
    needed = b"meta" if content_type == "image/heic" else b"moov"
    if needed not in kinds:
        raise Corrupt(f"no {needed.decode()} box")


def _check_webp(path: Path) -> None:
    with path.open("rb") as handle:
        header = handle.read(12)
    if len(header) < 12 or struct.unpack("<I", header[4:8])[0] + 8 != path.stat().st_size:
        raise Corrupt("RIFF length does not match the file")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _heic_size(data: bytes) -> tuple[int, int] | None:
    # The largest `ispe` (image spatial extents) property is the primary image's size.
    sizes, start = [], 0
    while (i := data.find(b"ispe", start)) != -1 and i + 16 <= len(data):
        sizes.append(struct.unpack(">II", data[i + 8 : i + 16]))
        start = i + 4
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def header_size(path: Path, content_type: str) -> tuple[int, int] | None:
    with path.open("rb") as handle:
        data = handle.read(256 * 1024)
    if content_type == "image/png" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if content_type == "image/jpeg":
        return _jpeg_size(data)
    if content_type == "image/webp":
        return _webp_size(data)
    if content_type == "image/heic":
        return _heic_size(data)
    return None


def decode_photo(path: Path, content_type: str) -> Any:  # numpy's BGR array (imported lazily)
    """BGR pixels with the EXIF orientation applied, or None if undecodable."""
    import cv2
    import numpy as np

    if content_type == "image/heic":
        import pillow_heif
        from PIL import ImageOps

        try:
            pillow_heif.register_heif_opener()
            from PIL import Image

            with Image.open(path) as image:
                rgb = ImageOps.exif_transpose(image).convert("RGB")
                return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)
        except Exception:
            return None
    # IMREAD_COLOR applies the EXIF orientation.
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def _photo(path: Path, content_type: str, decode: bool) -> Probe | None:
    settings = get_media_settings()
    size = header_size(path, content_type)
    if size is None:
        if not decode:
            return None
        raise Corrupt("no image size in the header")
    pixels = size[0] * size[1]
    if pixels > settings.media_max_image_pixels:
        raise AppError(
            errors.TOO_MANY_PIXELS,
            params={"pixels": pixels, "limit": settings.media_max_image_pixels},
            extra={"pixels": pixels, "limit": settings.media_max_image_pixels},
        )
    check_compression(pixels, path.stat().st_size)
    if not decode:
        return Probe("photo", size[0], size[1])
    image = decode_photo(path, content_type)
    if image is None or image.size == 0:
        raise Corrupt("does not decode")
    height, width = image.shape[:2]
    return Probe("photo", width, height)


def check_compression(pixels: int, file_size: int) -> None:
    """A large picture must not decode to many times its file size (a decompression bomb that
    stays under the pixel limit: 7000 x 7000 flat pixels in 143 KB)."""
    settings = get_media_settings()
    if pixels <= settings.media_ratio_check_min_pixels:
        return
    if pixels * 3 > settings.media_max_compression_ratio * max(1, file_size):
        raise AppError(
            errors.COMPRESSION_TOO_HIGH,
            params={"pixels": pixels, "size": file_size},
            extra={
                "pixels": pixels,
                "size_bytes": file_size,
                "max_ratio": settings.media_max_compression_ratio,
            },
        )


def too_heavy(reason: str, **extra: float) -> AppError:
    return AppError(
        errors.VIDEO_TOO_HEAVY, params={"reason": reason}, extra={"reason": reason, **extra}
    )


def check_frame(width: int, height: int) -> None:
    limit = get_media_settings().media_max_video_frame_pixels
    if width * height > limit:
        raise too_heavy("frame_size", width=width, height=height, limit=limit)


def check_video_rate(fps: float, frames: int) -> None:
    """Declared frame rate and count, judged before the frames are decoded."""
    settings = get_media_settings()
    if fps > settings.media_max_video_fps:
        raise too_heavy("frame_rate", fps=fps, limit=settings.media_max_video_fps)
    if frames > settings.media_max_video_frames:
        raise too_heavy("frame_count", frames=frames, limit=settings.media_max_video_frames)


def probe_video(path: Path) -> Probe:
    """Open the video and read its header figures; only then (within the limits) decode one
    frame."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise Corrupt("does not open")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if fps <= 0 or frames <= 0:
            raise Corrupt("no frame rate or frame count")
        check_frame(
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
        check_video_rate(fps, frames)
        ok, frame = capture.read()
        if not ok or frame is None:
            raise Corrupt("no frame")
        height, width = frame.shape[:2]
        check_frame(width, height)
        return Probe(
            "video", width, height, duration_s=round(frames / fps, 3), fps=fps, frames=frames
        )
    finally:
        capture.release()


# JPEG and PNG already had their signature and end marker checked; at upload time only their
# pixel count is checked here (decoding them is left to the worker). The formats added for
# incidents have no end marker, so they are decoded or opened at once.
SHALLOW_AT_UPLOAD = ("image/jpeg", "image/png")


def inspect_file(path: Path, content_type: str, *, deep: bool = True) -> Probe | None:
    """The probe of a photo/video, or None for other formats; AppError when refused."""
    if content_type not in PHOTO_TYPES and content_type not in VIDEO_TYPES:
        return None
    try:
        if content_type in BMFF_TYPES:
            _check_bmff(path, content_type)
        if content_type == "image/webp":
            _check_webp(path)
        if content_type in PHOTO_TYPES:
            return _photo(path, content_type, deep or content_type not in SHALLOW_AT_UPLOAD)
        probe = probe_video(path)
    except (Corrupt, OSError, struct.error, ValueError):
        raise AppError(errors.CORRUPT) from None
    limit = get_media_settings().media_max_video_seconds
    if probe.duration_s is not None and probe.duration_s > limit:
        raise AppError(
            errors.VIDEO_TOO_LONG,
            params={"seconds": round(probe.duration_s), "limit": int(limit)},
            extra={"duration_s": probe.duration_s, "limit": limit},
        )
    return probe


async def check(path: Path, content_type: str, *, deep: bool = False) -> Probe | None:
    return await anyio.to_thread.run_sync(lambda: inspect_file(path, content_type, deep=deep))


# OpenCV refuses to decode images above this many pixels (its own guard against bombs).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**28))
