"""Liveness and readiness as an orchestrator sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.core import health
from tests.support.databases import alembic_config
from tests.support.problems import assert_problem


def code_heads() -> list[str]:
    return ScriptDirectory.from_config(alembic_config("unused")).get_heads()


@pytest.fixture
async def stale_schema(db: AsyncSession) -> AsyncIterator[str]:
    """The test database claiming an older revision than the code's; restored afterwards."""
    (head,) = code_heads()
    await db.execute(sa.text("UPDATE alembic_version SET version_num = 'b0f41e2289a2'"))
    await db.commit()
    try:
        yield head
    finally:
        await db.execute(sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        await db.commit()


async def test_healthz_answers_while_the_process_lives(client):
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_is_ok_on_a_database_migrated_to_head(client):
    response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"status": "ok", "database": "ok", "migration": code_heads()[0]}


async def test_readyz_is_503_when_the_database_is_not_at_head(client, stale_schema):
    response = await client.get("/readyz", headers={"accept-language": "en"})

    body = assert_problem(response, 503, "service.unavailable")
    assert body["migration"] == "b0f41e2289a2"
    assert body["expected"] == stale_schema


async def test_readyz_is_503_when_the_database_was_never_migrated(client, db):
    await db.execute(sa.text("DELETE FROM alembic_version"))
    await db.commit()
    try:
        response = await client.get("/readyz")
    finally:
        await db.execute(
            sa.text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
            {"head": code_heads()[0]},
        )
        await db.commit()

    body = assert_problem(response, 503, "service.unavailable")
    assert body["migration"] is None


async def test_readyz_is_503_when_the_database_cannot_be_reached(
    client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # A real driver failing for real: SQLite cannot open a file in a missing directory.
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    monkeypatch.setattr(health, "session_factory", lambda: async_sessionmaker(engine))
    try:
        response = await client.get("/readyz")
    finally:
        await engine.dispose()

    body = assert_problem(response, 503, "service.unavailable")
    assert body["database"] == "unreachable"
    assert "missing" not in response.text  # no internals in the answer
