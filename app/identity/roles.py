from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CITIZEN = "citizen"
    COMMUNITY_HELPER = "community_helper"
    WARD_STAFF = "ward_staff"
    WARD_ADMIN = "ward_admin"
    CITY_ADMIN = "city_admin"


STAFF_ROLES = frozenset({Role.WARD_STAFF, Role.WARD_ADMIN, Role.CITY_ADMIN})
WARD_BOUND_ROLES = frozenset({Role.COMMUNITY_HELPER, Role.WARD_STAFF, Role.WARD_ADMIN})
