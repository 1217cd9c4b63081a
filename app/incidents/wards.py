"""Approximate centres of the demo wards (app/admin_units/data.py), used to resolve a location to
the ward that handles it: the nearest centre within INCIDENT_WARD_MAX_DISTANCE_M.

Nearest-centre (Voronoi) assignment is an approximation; a deployment with official ward
boundaries replaces this table (the interface is `resolve_ward`).
"""

from __future__ import annotations

from app.incidents.geo import haversine_m

# code -> (lat, lon)
WARD_CENTRES: dict[str, tuple[float, float]] = {
    "TNG-PDP": (21.5928, 105.8442),  # Phan Đình Phùng: city centre
    "TNG-GS": (21.5610, 105.8330),  # Gia Sàng: south of the centre
    "TNG-QT": (21.5990, 105.8030),  # Quyết Thắng: west, university area
    "TNG-TL": (21.5580, 105.8700),  # Tích Lương: south-east
    "TNG-BK": (22.1470, 105.8340),  # Bắc Kạn: the former provincial capital
}


def resolve_ward(lat: float, lon: float, max_distance_m: float) -> str | None:
    best: tuple[float, str] | None = None
    for code, (clat, clon) in WARD_CENTRES.items():
        distance = haversine_m(lat, lon, clat, clon)
        if best is None or distance < best[0]:
            best = (distance, code)
    if best is None or best[0] > max_distance_m:
        return None
    return best[1]
