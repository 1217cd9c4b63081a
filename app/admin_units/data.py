"""Thái Nguyên province and some of its wards after the 2025 reorganisation (two tiers).

Codes here are the service's own agency codes (used in dossier codes), not the national
statistical codes; a deployment loads the full list with `python -m app seed-demo` or its own data.
"""

from __future__ import annotations

from app.admin_units.models import AdminUnit

PROVINCE = AdminUnit(
    code="TNG", name="Tỉnh Thái Nguyên", name_en="Thai Nguyen Province", level="province"
)

WARDS = [
    AdminUnit(
        code="TNG-PDP",
        name="Phường Phan Đình Phùng",
        name_en="Phan Dinh Phung Ward",
        level="ward",
        parent_code="TNG",
    ),
    AdminUnit(
        code="TNG-GS",
        name="Phường Gia Sàng",
        name_en="Gia Sang Ward",
        level="ward",
        parent_code="TNG",
    ),
    AdminUnit(
        code="TNG-QT",
        name="Phường Quyết Thắng",
        name_en="Quyet Thang Ward",
        level="ward",
        parent_code="TNG",
    ),
    AdminUnit(
        code="TNG-TL",
        name="Phường Tích Lương",
        name_en="Tich Luong Ward",
        level="ward",
        parent_code="TNG",
    ),
    AdminUnit(
        code="TNG-BK",
        name="Phường Bắc Kạn",
        name_en="Bac Kan Ward",
        level="ward",
        parent_code="TNG",
    ),
]


def all_units() -> list[AdminUnit]:
    # Fresh instances: model_copy() of a table model shares SQLAlchemy's instance state, so a
    # copy added in one session made every later copy look already persisted (never inserted).
    return [AdminUnit(**u.model_dump()) for u in (PROVINCE, *WARDS)]
