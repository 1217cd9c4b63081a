"""Snapshot checks and processing.

`inspect_jpeg` runs on the request path: a walk over the JPEG markers (no pixel decoding, so
microseconds) that refuses what is not a complete baseline/progressive JPEG and reads its size
before anything is decoded (a decompression bomb is refused by its header). `process` runs in the
worker, in a thread: OpenCV decodes it (which drops EXIF), faces and licence plates are found
with OpenCV's Haar cascades on a reduced copy and blurred together with the regions the analytics
labelled face/plate, and a public copy and a thumbnail are encoded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

# Start-of-frame markers carrying the picture size (not DHT 0xC4, JPG 0xC8, DAC 0xCC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
PUBLIC_MAX_SIDE = 1280
THUMBNAIL_WIDTH = 320
# Detection runs on a copy this size: a face or plate too small to be found there (under about
# 20 px of 480, i.e. 1/24 of the frame) is also too small to be recognised in the public copy.
DETECT_MAX_SIDE = 480
FACE_LABELS = {"face", "person_face"}
PLATE_LABELS = {"plate", "license_plate", "licence_plate"}


class SnapshotError(ValueError):
    """The bytes are not a usable JPEG; `reason` says why (in English, for the problem detail)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def inspect_jpeg(data: bytes) -> tuple[int, int]:
    """Return (width, height) of a structurally complete JPEG, or raise SnapshotError."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        raise SnapshotError("not a JPEG file")
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise SnapshotError("truncated (no end-of-image marker)")
    pos, size = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise SnapshotError("corrupt marker structure")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise SnapshotError("corrupt segment length")
        if marker in _SOF:
            if length < 8:
                raise SnapshotError("corrupt frame header")
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise SnapshotError("no frame header before the image data")
            if size[0] == 0 or size[1] == 0:
                raise SnapshotError("zero width or height")
            return size
        pos += 2 + length
    raise SnapshotError("no image data")


@dataclass(frozen=True)
class Processed:
    width: int
    height: int
    public_jpeg: bytes
    public_size: tuple[int, int]
    thumbnail_jpeg: bytes
    thumbnail_size: tuple[int, int]
    faces: int
    plates: int


_local = threading.local()


def _cascades() -> tuple[Any, Any]:
    """Haar cascades shipped with opencv-python-headless 4.x; one pair per thread because a
    CascadeClassifier is not safe to share between threads."""
    pair = getattr(_local, "cascades", None)
    if pair is None:
        import cv2

        # One core per picture: the API (and other jobs) keep the rest, and more throughput
        # comes from more workers, not from OpenCV's thread pool fighting the event loop.
        cv2.setNumThreads(1)
        base = cv2.data.haarcascades  # type: ignore[attr-defined]  # cv2.data: not in OpenCV's stubs
        face = cv2.CascadeClassifier(base + "haarcascade_frontalface_default.xml")
        plate = cv2.CascadeClassifier(base + "haarcascade_russian_plate_number.xml")
        if face.empty() or plate.empty():
            raise RuntimeError("OpenCV Haar cascades missing: pin opencv-python-headless<5")
        pair = (face, plate)
        _local.cascades = pair
    return pair


Rect = tuple[int, int, int, int]


def detect(image: Any) -> tuple[list[Rect], list[Rect]]:
    """Faces and plates found on a reduced grey copy, scaled back to the image's pixels."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(width, height))
    small = (
        image
        if scale == 1.0
        else cv2.resize(
            image,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
    )
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    face_cascade, plate_cascade = _cascades()
    found = []
    for cascade, min_size in ((face_cascade, (20, 20)), (plate_cascade, (30, 10))):
        rects = cascade.detectMultiScale(grey, scaleFactor=1.15, minNeighbors=4, minSize=min_size)
        found.append([tuple(round(v / scale) for v in r) for r in rects])
    return found[0], found[1]


def _box_rects(
    boxes: list[dict[str, Any]], labels: set[str], width: int, height: int
) -> list[Rect]:
    rects = []
    for box in boxes:
        if str(box.get("label", "")).lower() in labels:
            rects.append(
                (
                    int(box["x"] * width),
                    int(box["y"] * height),
                    max(1, int(box["width"] * width)),
                    max(1, int(box["height"] * height)),
                )
            )
    return rects


def blur_regions(image: Any, rects: list[Rect]) -> None:
    """Pixelate then blur each region (with a margin), in place: unreadable, not reversible."""
    import cv2

    height, width = image.shape[:2]
    for x, y, w, h in rects:
        mx, my = max(2, w // 8), max(2, h // 8)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(width, x + w + mx), min(height, y + h + my)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = image[y0:y1, x0:x1]
        tiny = cv2.resize(
            roi, (max(1, (x1 - x0) // 12), max(1, (y1 - y0) // 12)), interpolation=cv2.INTER_AREA
        )
        coarse = cv2.resize(tiny, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(x1 - x0, y1 - y0) // 4) | 1)
        image[y0:y1, x0:x1] = cv2.GaussianBlur(coarse, (k, k), 0)


def _encode(
    image: Any, max_width: int | None = None, max_side: int | None = None, quality: int = 85
) -> tuple[bytes, tuple[int, int]]:
    import cv2

    height, width = image.shape[:2]
    scale = 1.0
    if max_width and width > max_width:
        scale = max_width / width
    if max_side and max(width, height) * scale > max_side:
        scale = max_side / max(width, height)
    if scale < 1.0:
        image = cv2.resize(
            image,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes(), (image.shape[1], image.shape[0])


def process(data: bytes, boxes: list[dict[str, Any]], max_pixels: int) -> Processed:
    """Decode, blur faces and plates, encode the public copy and the thumbnail (blocking)."""
    import cv2
    import numpy as np

    width, height = inspect_jpeg(data)
    if width * height > max_pixels:
        raise SnapshotError("too many pixels")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.shape[1] != width or image.shape[0] != height:
        raise SnapshotError("the image data cannot be decoded")
    faces, plates = detect(image)
    faces += _box_rects(boxes, FACE_LABELS, width, height)
    plates += _box_rects(boxes, PLATE_LABELS, width, height)
    blur_regions(image, [*faces, *plates])
    public, public_size = _encode(image, max_side=PUBLIC_MAX_SIDE)
    thumbnail, thumbnail_size = _encode(image, max_width=THUMBNAIL_WIDTH, quality=80)
    return Processed(
        width=width,
        height=height,
        public_jpeg=public,
        public_size=public_size,
        thumbnail_jpeg=thumbnail,
        thumbnail_size=thumbnail_size,
        faces=len(faces),
        plates=len(plates),
    )
