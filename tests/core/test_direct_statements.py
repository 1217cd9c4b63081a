"""`Direct` statements (the hot paths' driver-level queries): same values as the ORM, on both
databases, and a lost connection costs no read."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.core.db import Direct
from app.identity.models import User
from tests.support.flows import bearer, login, make_user

_users = User.__table__  # type: ignore[attr-defined]
_NEWEST_USERS = Direct(
    sa.select(_users.c.id, _users.c.phone, _users.c.created_at, _users.c.locked_until)
    .where(_users.c.role == sa.bindparam("role"))
    .order_by(_users.c.created_at.desc())
    .limit(2)
)


async def test_values_read_directly_are_those_of_the_orm(db):
    staff = [await make_user(db, f"09120002{n:02d}", "city_admin") for n in range(3)]
    await make_user(db, "0912000299", "citizen")

    rows = await _NEWEST_USERS.fetch_all({"role": "city_admin"})

    assert len(rows) == 2  # the LIMIT built into the statement
    assert all(isinstance(row["id"], uuid.UUID) for row in rows)
    assert {row["id"] for row in rows} <= {user.id for user in staff}
    assert all(row["created_at"].tzinfo is not None for row in rows)  # aware UTC on both


async def _drop_every_other_connection(db) -> int:
    killed = (
        await db.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    ).scalar_one()
    await db.commit()
    return int(killed)


async def test_a_read_meets_a_lost_connection_and_is_answered_anyway(client, db, backend):
    if backend != "postgresql":
        pytest.skip("SQLite has no server connections to lose")
    await make_user(db, "0912000300", "citizen")
    tokens = await login(client, "0912000300")
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 200

    assert await _drop_every_other_connection(db) >= 1  # the held connection /me just used

    response = await client.get("/api/v1/me", headers=bearer(tokens))
    assert response.status_code == 200, response.text


def test_a_change_cannot_be_a_direct_statement() -> None:
    """Writes happen in the request's transaction only: `Direct` refuses anything but a read."""
    with pytest.raises(TypeError):
        Direct(sa.update(_users).values(locked_until=None))  # type: ignore[arg-type]


async def test_float_and_numeric_results_come_back_as_their_python_types(db):
    """asyncpg's numeric processors need the wire type, which a compiled-ahead statement
    does not have: floats and Decimals still come back as the columns ask."""
    from decimal import Decimal

    statement = Direct(
        sa.select(
            sa.cast(sa.literal(21.0358), sa.Float).label("lat"),
            sa.cast(sa.literal("12.50"), sa.Numeric(10, 2)).label("fee"),
            sa.cast(sa.literal(None), sa.Float).label("missing"),
        )
    )

    row = await statement.fetch_one({})

    assert row == {"lat": 21.0358, "fee": Decimal("12.50"), "missing": None}
    assert isinstance(row["lat"], float) and isinstance(row["fee"], Decimal)


async def test_a_returned_connection_goes_to_the_longest_waiter_not_a_newcomer(database_url):
    """Fairness of the held connections: under load, a newcomer taking a returned connection
    ahead of those queued (asyncio.Queue lets it) made p99 fifteen times p50."""
    import asyncio

    from app.core.db import _HeldConnections, make_engine

    engine = make_engine(database_url)
    held = _HeldConnections(engine, 1)
    served: list[str] = []

    async def borrow(name: str) -> None:
        async with held.lend():
            served.append(name)

    try:
        first = held.lend()
        await first.__aenter__()
        waiting = [asyncio.create_task(borrow(name)) for name in ("b", "c")]
        await asyncio.sleep(0.01)
        assert served == []  # both queue behind the one connection

        await first.__aexit__(None, None, None)
        newcomer = asyncio.create_task(borrow("newcomer"))  # arrives as it is returned
        await asyncio.gather(*waiting, newcomer)

        assert served == ["b", "c", "newcomer"]
    finally:
        await held.close()
        await engine.dispose()


def test_held_connections_default_to_two_on_postgresql_four_on_sqlite_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.core.config import get_settings
    from app.core.db import direct_connections

    monkeypatch.delenv("DATABASE_DIRECT_CONNECTIONS", raising=False)
    get_settings.cache_clear()
    try:
        assert (direct_connections("postgresql"), direct_connections("sqlite")) == (2, 4)
        monkeypatch.setenv("DATABASE_DIRECT_CONNECTIONS", "3")
        get_settings.cache_clear()
        assert (direct_connections("postgresql"), direct_connections("sqlite")) == (3, 3)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


async def test_a_direct_read_at_a_fresh_process_never_waits_on_the_sessions_pool(
    db, backend, monkeypatch: pytest.MonkeyPatch
):
    """A burst at a fresh process: every pooled connection is held by a request's session when
    the held connections are first opened. They come from a pool of their own, so the read is
    answered at once (from the sessions' pool it waited 30 s, then failed)."""
    import asyncio

    from app.core import db as core_db
    from app.core.config import get_settings

    if backend != "postgresql":
        pytest.skip("the sessions' pool is bounded by DATABASE_POOL_SIZE on PostgreSQL")
    await make_user(db, "0912000302", "citizen")
    await db.commit()
    monkeypatch.setattr(core_db, "_held", None)  # as at a fresh process
    monkeypatch.setattr(core_db, "_held_engine", None)
    engine = core_db.get_engine()
    busy = []
    try:
        for _ in range(2 * get_settings().database_pool_size):  # pool size and its overflow
            busy.append(await engine.connect())
        rows = await asyncio.wait_for(_NEWEST_USERS.fetch_all({"role": "citizen"}), 5)
        assert rows != []
    finally:
        for conn in busy:
            await conn.close()
        fresh, fresh_engine = core_db._held, core_db._held_engine
        if fresh is not None and fresh_engine is not None:
            await fresh.close()
            await fresh_engine.dispose()
