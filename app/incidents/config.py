"""Incident settings (env: INCIDENT_*), beside the domain so it joins without reshaping core."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A coarse outline of Thái Nguyên province after the 2025 merger with Bắc Kạn, as (lon, lat)
# vertices. It is an approximation for development; a deployment sets the official boundary.
THAI_NGUYEN_OUTLINE: list[tuple[float, float]] = [
    (105.45, 21.30),
    (106.25, 21.30),
    (106.30, 21.80),
    (106.25, 22.40),
    (106.05, 22.75),
    (105.55, 22.75),
    (105.40, 22.30),
    (105.42, 21.70),
]


class IncidentSettings(BaseSettings):
    """Traffic incidents: the service area, wards, "me too" duplicates, the nearby feed, limits
    and Open311."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Reports are accepted only inside this polygon of (lon, lat) vertices (JSON list of pairs).
    incident_service_area: list[tuple[float, float]] = Field(
        default_factory=lambda: list(THAI_NGUYEN_OUTLINE)
    )
    # A location is given to the nearest ward centre within this distance; farther locations go
    # to the province queue (city admins).
    incident_ward_max_distance_m: float = 10_000
    # "Me too": an open report of the same category this close and this recent is offered
    # instead of a twin. Per-category windows override the default (JSON object).
    incident_duplicate_radius_m: float = 150
    # "Me too": how recent (minutes) an open report of the same category must be, unless its
    # category has a window of its own below.
    incident_duplicate_window_minutes: int = 180
    # "Me too" windows (minutes) per category, overriding the default (JSON object).
    incident_duplicate_window_minutes_by_category: dict[str, int] = Field(
        default_factory=lambda: {"damaged_road": 30 * 24 * 60, "broken_traffic_light": 7 * 24 * 60}
    )
    # Largest radius (metres) the nearby feed answers; a larger one is refused.
    incident_nearby_max_radius_m: float = 10_000
    # Reports a citizen may file an hour.
    incident_reports_per_hour: int = 10
    # Photos and videos one report may carry.
    incident_max_media: int = 10
    # Side of a spatial grid cell in degrees (~1.1 km of latitude at 0.01): the nearby query
    # looks only at the cells its circle touches, which an index serves on both databases.
    # Changing it needs the stored `cell` column recomputed.
    incident_grid_degrees: float = 0.01
    # Open311 partners filing reports without a citizen account: {"api key": "partner name"}.
    incident_open311_api_keys: dict[str, str] = Field(default_factory=dict)
    # Reports one Open311 partner (API key) may file an hour.
    incident_open311_reports_per_hour: int = 120
    # The Open311 `jurisdiction_id` this server answers for; requests naming another get 404.
    incident_open311_jurisdiction_id: str = "thainguyen.gov.vn"

    @field_validator("incident_service_area")
    @classmethod
    def _polygon(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(value) < 3:
            raise ValueError("the service area needs at least three vertices")
        return value


@lru_cache
def get_incident_settings() -> IncidentSettings:
    return IncidentSettings()
