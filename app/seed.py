"""Demo data for `make run`: the province, a few wards, one staff user per ward and a city admin.

Seeded once: a second run finds the marker user and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin_units import service as admin_units
from app.admin_units.data import all_units
from app.identity import service as identity
from app.identity.phone import normalize_vn_mobile

DEMO_PASSWORD = "ThaiNguyen@2026"  # noqa: S105 - printed on purpose: demo only


@dataclass
class DemoAccount:
    role: str
    phone: str
    password: str
    ward_code: str | None
    name: str


def demo_accounts() -> list[DemoAccount]:
    accounts = [DemoAccount("city_admin", "0981000000", DEMO_PASSWORD, None, "Quản trị Thành phố")]
    for index, unit in enumerate(u for u in all_units() if u.level == "ward"):
        accounts.append(
            DemoAccount(
                "ward_staff",
                f"098100{index + 1:04d}",
                DEMO_PASSWORD,
                unit.code,
                f"Cán bộ {unit.name}",
            )
        )
    return accounts


async def seed_demo(session: AsyncSession) -> tuple[bool, list[DemoAccount]]:
    """Return (created, accounts). Idempotent."""
    accounts = demo_accounts()
    marker = normalize_vn_mobile(accounts[0].phone)
    if marker and await identity.find_user_by_phone(session, marker) is not None:
        return False, accounts
    for unit in all_units():
        await admin_units.upsert(session, unit)
    for account in accounts:
        await identity.create_user(
            session,
            phone_raw=account.phone,
            password=account.password,
            full_name=account.name,
            role=account.role,
            ward_code=account.ward_code,
        )
    return True, accounts
