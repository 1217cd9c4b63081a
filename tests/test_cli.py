"""The operator CLI, run as operators run it: `python -m app ...` in a process of its own."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import PROJECT_ROOT
from app.identity.models import User
from app.seed import demo_accounts
from tests.conftest import count
from tests.support.databases import alembic_config
from tests.support.flows import PASSWORD, seed_wards

pytestmark = pytest.mark.slow


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def single_json(self) -> dict[str, Any]:
        """stdout is exactly one JSON object (on one line)."""
        lines = self.stdout.strip().splitlines()
        assert len(lines) == 1, f"expected one line of JSON, got: {self.stdout!r} {self.stderr}"
        data = json.loads(lines[0])
        assert isinstance(data, dict)
        return data


async def cli(database_url: str, *args: str) -> Run:
    env = {**os.environ, "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def create_staff(*extra: str, phone: str = "0912000111") -> tuple[str, ...]:
    return (
        "users",
        "create",
        "--phone",
        phone,
        "--password",
        PASSWORD,
        "--name",
        "Lê Thị Cán Bộ",
        "--role",
        "ward_staff",
        *extra,
        "--format",
        "json",
    )


async def test_users_create_prints_the_new_account_as_json(database_url, db: AsyncSession):
    await seed_wards(db)

    run = await cli(database_url, *create_staff("--ward", "TNG-PDP"))

    assert run.returncode == 0, run.stderr
    data = run.single_json()
    assert data["phone"] == "+84912000111"
    assert data["role"] == "ward_staff"
    assert data["ward_code"] == "TNG-PDP"
    user = (await db.execute(sa.select(User).where(User.phone == "+84912000111"))).scalar_one()
    assert data["id"] == str(user.id)
    assert (user.role, user.full_name) == ("ward_staff", "Lê Thị Cán Bộ")


async def test_users_create_refuses_bad_input_with_a_json_error(database_url, db: AsyncSession):
    await seed_wards(db)

    bad_phone, no_ward = await asyncio.gather(
        cli(database_url, *create_staff("--ward", "TNG-PDP", phone="0123")),
        cli(database_url, *create_staff()),
    )

    for run in (bad_phone, no_ward):
        assert run.returncode != 0
        assert run.single_json()["message"]
    assert bad_phone.single_json()["error"] == "identity.invalid_phone"
    assert no_ward.single_json()["error"] == "identity.invalid_role"
    assert "ward" in no_ward.single_json()["message"]
    assert await count(db, User) == 0


async def test_seed_demo_seeds_once(database_url, db: AsyncSession):
    first = await cli(database_url, "seed-demo", "--format", "json")
    assert first.returncode == 0, first.stderr
    seeded = await count(db, User)

    second = await cli(database_url, "seed-demo", "--format", "json")

    assert second.returncode == 0, second.stderr
    assert first.single_json()["created"] is True
    assert second.single_json()["created"] is False
    assert seeded == len(demo_accounts()) == len(first.single_json()["accounts"])
    assert await count(db, User) == seeded


async def test_migrate_is_idempotent(database_url, db: AsyncSession):
    """The test database is already at head: migrating again succeeds and changes nothing."""
    from alembic.script import ScriptDirectory

    (head,) = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    await seed_wards(db)
    units_before = (await db.execute(sa.text("SELECT count(*) FROM admin_units"))).scalar_one()
    await db.rollback()

    run = await cli(database_url, "migrate", "--format", "json")

    assert run.returncode == 0, run.stderr
    assert run.single_json() == {"migrated": True}
    version = (await db.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars()
    assert list(version) == [head]
    units = (await db.execute(sa.text("SELECT count(*) FROM admin_units"))).scalar_one()
    assert units == units_before > 0
