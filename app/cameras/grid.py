"""The coarse position grid of nearby warnings: cells of 0.01 degree (about 1.1 km north-south,
1 km east-west at Thái Nguyên's latitude). A device is kept as its cell only, never a point."""

from __future__ import annotations

import math

CELL_DEGREES = 0.01


def cell_of(lat: float, lon: float) -> str:
    return f"{math.floor(lat / CELL_DEGREES)}:{math.floor(lon / CELL_DEGREES)}"


def cells_around(cell: str, rings: int) -> list[str]:
    """The cell and `rings` rings of neighbours around it ((2 rings + 1)^2 cells)."""
    row, col = (int(part) for part in cell.split(":"))
    return [
        f"{row + dr}:{col + dc}"
        for dr in range(-rings, rings + 1)
        for dc in range(-rings, rings + 1)
    ]
