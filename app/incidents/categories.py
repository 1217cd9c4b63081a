"""What citizens report, with names in both languages (also the Open311 service list)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    vi: str
    en: str
    description_en: str


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category(
            "accident",
            "Tai nạn giao thông",
            "Traffic accident",
            "A collision or crash on the road.",
        ),
        Category(
            "traffic_jam", "Ùn tắc giao thông", "Traffic jam", "Heavy congestion or a blocked road."
        ),
        Category("flooding", "Ngập úng", "Flooding", "Water over the road."),
        Category(
            "broken_traffic_light",
            "Đèn tín hiệu hỏng",
            "Broken traffic light",
            "A traffic light that is off, stuck or damaged.",
        ),
        Category(
            "damaged_road",
            "Hư hỏng mặt đường",
            "Damaged road",
            "Potholes, subsidence, broken road surface or fixtures.",
        ),
        Category(
            "illegal_parking",
            "Đỗ xe sai quy định",
            "Illegal parking",
            "Vehicles parked where they block traffic or pavements.",
        ),
        Category(
            "traffic_violation",
            "Vi phạm giao thông",
            "Traffic violation",
            "Dangerous or unlawful driving seen on the road.",
        ),
        Category("fire", "Cháy, khói", "Fire or smoke", "A fire, or smoke, on or beside the road."),
    )
}
