"""Photos and videos made on the spot with OpenCV (and Pillow for EXIF/HEIC): a cartoon face and
a licence plate that OpenCV's Haar cascades find, GPS in EXIF, a rotated orientation."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import cv2
import numpy as np

PLATE_BOX = (200, 300, 240, 52)  # x, y, w, h in the unrotated 640x480 picture
FACE_CENTRE = (470, 170)


def scene(
    width: int = 640, height: int = 480, *, plate: bool = True, face: bool = True
) -> np.ndarray:
    image = np.full((height, width, 3), 90, np.uint8)
    cv2.rectangle(image, (0, height * 3 // 4), (width, height), (60, 60, 60), -1)  # the road
    if plate:
        x, y, w, h = PLATE_BOX
        cv2.rectangle(image, (x, y), (x + w, y + h), (255, 255, 255), -1)
        cv2.rectangle(image, (x, y), (x + w, y + h), (0, 0, 0), 3)
        cv2.putText(
            image, "A123BC 77", (x + 10, y + 40), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (0, 0, 0), 3
        )
    if face:
        cx, cy = FACE_CENTRE
        cv2.rectangle(image, (cx - 120, cy - 150), (cx + 120, cy + 150), (200, 200, 200), -1)
        cv2.ellipse(image, (cx, cy), (90, 120), 0, 0, 360, (150, 170, 210), -1)
        cv2.ellipse(image, (cx - 35, cy - 30), (20, 10), 0, 0, 360, (40, 40, 40), -1)
        cv2.ellipse(image, (cx + 35, cy - 30), (20, 10), 0, 0, 360, (40, 40, 40), -1)
        cv2.rectangle(image, (cx - 70, cy - 55), (cx - 10, cy - 45), (30, 30, 30), -1)
        cv2.rectangle(image, (cx + 10, cy - 55), (cx + 70, cy - 45), (30, 30, 30), -1)
        cv2.line(image, (cx, cy - 20), (cx - 10, cy + 30), (100, 100, 140), 4)
        cv2.ellipse(image, (cx, cy + 60), (35, 12), 0, 0, 180, (60, 60, 150), -1)
    return image


def jpeg_with_gps(image: np.ndarray | None = None, orientation: int = 6) -> bytes:
    """A phone-like JPEG: GPS coordinates and an orientation tag in EXIF. Like a phone held
    upright, the pixels are stored sideways and orientation 6 says "turn 90° clockwise"."""
    from PIL import Image

    image = scene() if image is None else image
    if orientation == 6:
        image = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (21.0, 35.0, 34.5), 3: "E", 4: (105.0, 50.0, 40.2)}
    out = io.BytesIO()
    pil.save(out, "JPEG", exif=exif.tobytes(), quality=92)
    return out.getvalue()


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def heic(image: np.ndarray | None = None) -> bytes:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    image = scene() if image is None else image
    out = io.BytesIO()
    Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).save(out, "HEIF")
    return out.getvalue()


def video(
    seconds: float = 1.0,
    fps: int = 10,
    size: tuple[int, int] = (320, 240),
    fourcc: str = "mp4v",
    ext: str = ".mp4",
) -> bytes:
    """A short clip of the scene with a moving bar, written by OpenCV's bundled FFMPEG."""
    width = size[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{ext}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        assert writer.isOpened()
        base = cv2.resize(scene(), size)
        for i in range(round(seconds * fps)):
            frame = base.copy()
            cv2.rectangle(frame, (i * 5 % width, 10), (i * 5 % width + 20, 30), (0, 0, 255), -1)
            writer.write(frame)
        writer.release()
        return path.read_bytes()


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian: high for crisp text and edges, low once blurred."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image
