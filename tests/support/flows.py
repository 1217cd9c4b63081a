"""Steps a citizen or staff member takes, shared by the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin_units import service as admin_units
from app.admin_units.data import all_units
from app.core.db import session_factory
from app.core.jobs import Worker, load_job_modules
from app.identity import service as identity
from app.identity.models import User

PASSWORD = "mot-mat-khau-dai-2026"


async def run_jobs(max_rounds: int = 20) -> None:
    load_job_modules()
    worker = Worker(session_factory(), name="test-worker")
    for _ in range(max_rounds):
        if await worker.run_once() == 0:
            return


def last_code(sms_log: Path, phone_e164: str) -> str:
    lines = [json.loads(line) for line in sms_log.read_text(encoding="utf-8").splitlines()]
    mine = [line for line in lines if line["to"] == phone_e164]
    assert mine, f"no SMS to {phone_e164}"
    match = re.search(r"\b(\d{6})\b", mine[-1]["body"])
    assert match, mine[-1]["body"]
    return match.group(1)


async def request_code(client: httpx.AsyncClient, phone: str, purpose: str = "register") -> None:
    response = await client.post("/api/v1/auth/otp", json={"phone": phone, "purpose": purpose})
    assert response.status_code == 202, response.text
    await run_jobs()


async def register(
    client: httpx.AsyncClient,
    sms_log: Path,
    phone: str,
    password: str = PASSWORD,
    full_name: str = "Nguyễn Văn An",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    await request_code(client, phone)
    e164 = "+84" + phone.lstrip("0") if phone.startswith("0") else phone
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "phone": phone,
            "otp": last_code(sms_log, e164),
            "password": password,
            "full_name": full_name,
        },
        headers=headers or {},
    )
    assert response.status_code == 201, response.text
    return response.json()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def seed_wards(db: AsyncSession) -> None:
    for unit in all_units():
        await admin_units.upsert(db, unit)
    await db.commit()


async def make_user(
    db: AsyncSession,
    phone: str,
    role: str,
    ward_code: str | None = None,
    password: str = PASSWORD,
    full_name: str = "Cán bộ",
) -> User:
    user = await identity.create_user(
        db, phone_raw=phone, password=password, full_name=full_name, role=role, ward_code=ward_code
    )
    await db.commit()
    return user


async def login(client: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/login", json={"phone": phone, "password": password})
    assert response.status_code == 200, response.text
    return response.json()
