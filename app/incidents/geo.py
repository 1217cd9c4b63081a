"""Plain geometry that behaves the same on SQLite and PostgreSQL (no PostGIS).

Distances on the ground use the haversine formula. The database side of the nearby query uses
only arithmetic both engines have: a grid cell index to find candidates, a bounding box, and an
equirectangular squared distance (exact enough to order points within a city) computed with a
cosine taken in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def point_in_polygon(lon: float, lat: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Ray casting; points exactly on an edge may fall either way (irrelevant at our scale)."""
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) enclosing a circle (not for the poles)."""
    dlat = radius_m / METRES_PER_DEGREE_LAT
    dlon = radius_m / (METRES_PER_DEGREE_LAT * max(0.01, math.cos(math.radians(lat))))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def cell_of(lat: float, lon: float, size: float) -> int:
    """One integer per grid cell: row * 10^6 + column (columns never reach 10^6 for size>=0.001)."""
    row = math.floor((lat + 90.0) / size)
    col = math.floor((lon + 180.0) / size)
    return row * 1_000_000 + col


def cells_covering(
    box: tuple[float, float, float, float], size: float, max_cells: int = 2500
) -> list[int] | None:
    """The cells a bounding box touches, or None when there would be too many to list."""
    min_lat, max_lat, min_lon, max_lon = box
    rows = range(math.floor((min_lat + 90.0) / size), math.floor((max_lat + 90.0) / size) + 1)
    cols = range(math.floor((min_lon + 180.0) / size), math.floor((max_lon + 180.0) / size) + 1)
    if len(rows) * len(cols) > max_cells:
        return None
    return [r * 1_000_000 + c for r in rows for c in cols]


def lon_scale(lat: float) -> float:
    """Squared-distance weight of longitude degrees at this latitude."""
    return math.cos(math.radians(lat)) ** 2
