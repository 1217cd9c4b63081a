"""OpenCV work of the worker (synchronous; called in a thread): public versions of photos and
videos with faces and licence plates blurred, thumbnails, poster frames.

Re-encoding through `imencode` drops every EXIF field (GPS included); `imread` has already applied
the EXIF orientation. Detection runs on a reduced copy (Haar cascades are slow at full size) and
its boxes are scaled back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import cv2.data
import numpy as np

from app.core.errors import AppError
from app.media import errors
from app.media.config import get_media_settings
from app.media.inspect import Corrupt, check_frame, decode_photo, probe_video, too_heavy

Box = tuple[int, int, int, int]
_local = threading.local()


def _cascades() -> tuple[Any, Any]:
    """One pair per thread: a CascadeClassifier must not be shared across threads."""
    if not hasattr(_local, "cascades"):
        root = Path(cv2.data.haarcascades)
        faces = cv2.CascadeClassifier(str(root / "haarcascade_frontalface_default.xml"))
        plates = cv2.CascadeClassifier(str(root / "haarcascade_russian_plate_number.xml"))
        if faces.empty() or plates.empty():
            raise RuntimeError("Haar cascades missing: opencv-python-headless 4.x is required")
        _local.cascades = (faces, plates)
    return _local.cascades


@dataclass
class Detections:
    faces: list[Box] = field(default_factory=list)
    plates: list[Box] = field(default_factory=list)

    @property
    def boxes(self) -> list[Box]:
        return [*self.faces, *self.plates]


def resize_long_side(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def detect(image: np.ndarray, max_side: int | None = None) -> Detections:
    """Faces and plates, found on a reduced grey copy, as boxes of the full image (padded)."""
    max_side = max_side or get_media_settings().media_detect_max_side
    height, width = image.shape[:2]
    small = resize_long_side(image, max_side)
    scale = width / small.shape[1]
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    face_cascade, plate_cascade = _cascades()

    def found(cascade: Any, min_size: tuple[int, int], pad: float) -> list[Box]:
        boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=min_size)
        out = []
        for x, y, w, h in boxes if len(boxes) else []:
            pad_w, pad_h = int(w * scale * pad), int(h * scale * pad)
            x0, y0 = max(0, int(x * scale) - pad_w), max(0, int(y * scale) - pad_h)
            x1 = min(width, int((x + w) * scale) + pad_w)
            y1 = min(height, int((y + h) * scale) + pad_h)
            out.append((x0, y0, x1 - x0, y1 - y0))
        return out

    # Plate boxes come out tight (often missing an end of the plate): pad them more. Better a
    # little too much blur than a readable character.
    return Detections(
        faces=found(face_cascade, (16, 16), 0.15), plates=found(plate_cascade, (24, 8), 0.3)
    )


def blur_regions(image: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """A copy with each box made unrecognisable: pixelated, then blurred."""
    out = image.copy()
    for x, y, w, h in boxes:
        if w < 2 or h < 2:
            continue
        region = out[y : y + h, x : x + w]
        tiny = cv2.resize(region, (max(1, w // 12), max(1, h // 12)), interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(tiny, (w, h), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(w, h) // 4) | 1)
        out[y : y + h, x : x + w] = cv2.GaussianBlur(blocky, (k, k), 0)
    return out


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, get_media_settings().media_jpeg_quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


@dataclass
class Output:
    name: str
    path: Path
    content_type: str
    width: int
    height: int


@dataclass
class Result:
    kind: str
    width: int
    height: int
    faces: int
    plates: int
    outputs: list[Output]
    duration_s: float | None = None
    fps: float | None = None
    frames: int | None = None


def _thumbnails(image: np.ndarray, out_dir: Path) -> list[Output]:
    outputs = []
    for side in get_media_settings().media_thumbnail_sizes:
        version = resize_long_side(image, side)
        path = out_dir / f"w{side}.jpg"
        path.write_bytes(encode_jpeg(version))
        outputs.append(Output(f"w{side}", path, "image/jpeg", version.shape[1], version.shape[0]))
    return outputs


def process_photo(src: Path, content_type: str, out_dir: Path) -> Result:
    image = decode_photo(src, content_type)
    if image is None or image.size == 0:
        raise Corrupt("does not decode")
    found = detect(image)
    public = blur_regions(image, found.boxes)
    height, width = image.shape[:2]
    return Result(
        "photo", width, height, len(found.faces), len(found.plates), _thumbnails(public, out_dir)
    )


PUBLIC_VIDEO_SIDE = 854  # 480p: enough for the feed, cheap to blur frame by frame


def process_video(src: Path, out_dir: Path) -> Result:
    """A blurred public copy (MPEG-4, `mp4v`: the wheels have no H.264 encoder) and a poster."""
    probe = probe_video(src)
    capture = cv2.VideoCapture(str(src))
    fps = probe.fps or 25.0
    # Detect twice a second on a small copy; boxes hold in between (padded for movement).
    # Haar cascades cost ~100 ms per 640 px frame here: every frame would take minutes.
    every = max(1, round(fps / 2))
    detect_side = min(480, get_media_settings().media_detect_max_side)
    poster_at = min(probe.frames or 1, round(fps)) - 1
    writer = None
    poster = None
    faces = plates = 0
    boxes: list[Box] = []
    index = 0
    path = out_dir / "video.mp4"
    settings = get_media_settings()
    # The header may lie: what is decoded is bounded too (frames, their size, their timestamps).
    # Containers' frame counts can be estimates: a little slack over the declared count.
    max_frames = min(settings.media_max_video_frames, int((probe.frames or 0) * 1.05) + 30)
    max_ms = settings.media_max_video_seconds * 1000
    try:
        while True:
            if index >= max_frames:
                if capture.grab():  # one frame more than declared (or allowed): refused
                    raise too_heavy("frame_count", limit=max_frames)
                break
            ok, frame = capture.read()
            if not ok:
                break
            check_frame(frame.shape[1], frame.shape[0])
            if capture.get(cv2.CAP_PROP_POS_MSEC) > max_ms:
                seconds = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                raise AppError(
                    errors.VIDEO_TOO_LONG,
                    params={
                        "seconds": round(seconds),
                        "limit": int(settings.media_max_video_seconds),
                    },
                    extra={"duration_s": seconds, "limit": settings.media_max_video_seconds},
                )
            frame = resize_long_side(frame, PUBLIC_VIDEO_SIDE)
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(
                    str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height)
                )
            if index % every == 0:
                found = detect(frame, detect_side)
                boxes = found.boxes
                faces, plates = max(faces, len(found.faces)), max(plates, len(found.plates))
            public = blur_regions(frame, boxes)
            writer.write(public)
            if index == max(0, poster_at):
                poster = public
            index += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if writer is None or poster is None:
        raise Corrupt("no frames")
    outputs = [
        Output("video", path, "video/mp4", poster.shape[1], poster.shape[0]),
        *_thumbnails(poster, out_dir),
    ]
    return Result(
        "video",
        probe.width,
        probe.height,
        faces,
        plates,
        outputs,
        duration_s=probe.duration_s,
        fps=probe.fps,
        frames=probe.frames,
    )


def process(src: Path, content_type: str, kind: str, out_dir: Path) -> Result:
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "photo":
        return process_photo(src, content_type, out_dir)
    return process_video(src, out_dir)
