"""Steps shared by the incident tests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import PROJECT_ROOT
from app.core.jobs import Job
from tests.support.flows import bearer, login, make_user

# Around Phan Đình Phùng ward's centre, in Thái Nguyên city.
CENTRE = (21.5930, 105.8445)
# Gia Sàng ward, ~3.5 km south.
GIA_SANG = (21.5615, 105.8335)
# Inside the province, far from every demo ward centre: the province queue.
COUNTRYSIDE = (21.75, 106.10)
# Hà Nội: outside the service area.
HANOI = (21.0285, 105.8542)


def north(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_195.0, point[1]


async def citizen(
    client: httpx.AsyncClient, db: AsyncSession, phone: str, name: str = "Nguyễn Văn An"
) -> dict[str, str]:
    await make_user(db, phone, "citizen", full_name=name)
    return bearer(await login(client, phone))


async def staff(
    client: httpx.AsyncClient,
    db: AsyncSession,
    phone: str,
    ward: str | None,
    role: str = "ward_staff",
) -> dict[str, str]:
    await make_user(db, phone, role, ward)
    return bearer(await login(client, phone))


async def file_report(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    point: tuple[float, float],
    category: str = "flooding",
    expect: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "category": category,
        "lat": point[0],
        "lon": point[1],
        "address": "Đường Hoàng Văn Thụ",
        "description": "Ngập sâu 30 cm",
        **extra,
    }
    response = await client.post("/api/v1/incidents", json=body, headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


async def act(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    incident_id: str,
    action: str,
    expect: int = 200,
    **extra: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/staff/incidents/{incident_id}/transitions",
        json={"action": action, **extra},
        headers=headers,
    )
    assert response.status_code == expect, response.text
    return response.json()


PAYLOAD_SCHEMA = PROJECT_ROOT / "mobile_contracts" / "jobs" / "incident.status_changed.schema.json"


async def status_jobs(db: AsyncSession) -> list[Job]:
    """The `incident.status_changed` jobs so far, each checked against its published contract."""
    rows = await db.execute(
        sa.select(Job).where(Job.kind == "incident.status_changed").order_by(Job.created_at)
    )
    jobs = list(rows.scalars())
    contract = json.loads(PAYLOAD_SCHEMA.read_text(encoding="utf-8"))
    for job in jobs:
        jsonschema.validate(job.payload, contract)
    return jobs
