"""A drawn frontal face that OpenCV's Haar cascade (opencv-python-headless 4.x) finds: dark
brows and eyes over a lighter face, a nose bridge, a mouth. No photograph ships with the test
suite; this is enough to exercise the detection path end to end."""

from __future__ import annotations

import cv2
import numpy as np


def drawn_face(size: int = 260, width: int = 640, height: int = 480) -> np.ndarray:
    image = np.full((height, width, 3), 90, np.uint8)
    cx, cy = width // 2, height // 2
    cv2.ellipse(
        image, (cx, cy), (int(size * 0.42), int(size * 0.55)), 0, 0, 360, (150, 170, 200), -1
    )
    for side in (-1, 1):
        x = cx + side * int(size * 0.18)
        cv2.ellipse(
            image,
            (x, cy - int(size * 0.2)),
            (int(size * 0.1), int(size * 0.03)),
            0,
            0,
            360,
            (40, 40, 40),
            -1,
        )
        cv2.ellipse(
            image,
            (x, cy - int(size * 0.1)),
            (int(size * 0.08), int(size * 0.04)),
            0,
            0,
            360,
            (30, 30, 30),
            -1,
        )
    cv2.ellipse(
        image,
        (cx, cy + int(size * 0.08)),
        (int(size * 0.04), int(size * 0.1)),
        0,
        0,
        360,
        (120, 140, 170),
        -1,
    )
    cv2.ellipse(
        image,
        (cx, cy + int(size * 0.28)),
        (int(size * 0.14), int(size * 0.04)),
        0,
        0,
        360,
        (60, 60, 120),
        -1,
    )
    return cv2.GaussianBlur(image, (7, 7), 0)
