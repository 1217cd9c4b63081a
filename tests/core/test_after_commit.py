"""Effects outside the database (metrics) that wait for the transaction: after its commit only."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit


async def test_a_callback_runs_once_the_transaction_commits(db: AsyncSession) -> None:
    seen: list[str] = []
    await db.execute(sa.text("SELECT 1"))
    after_commit(db, seen.append, "committed")
    assert seen == []

    await db.commit()
    await db.execute(sa.text("SELECT 1"))
    await db.commit()

    assert seen == ["committed"]  # once, not again at the next commit


async def test_a_rolled_back_transaction_runs_none_not_even_at_a_later_commit(
    db: AsyncSession,
) -> None:
    seen: list[str] = []
    await db.execute(sa.text("SELECT 1"))
    after_commit(db, seen.append, "rolled back")
    await db.rollback()

    await db.execute(sa.text("SELECT 1"))
    after_commit(db, seen.append, "committed")
    await db.commit()

    assert seen == ["committed"]


async def test_a_failing_callback_does_not_make_the_commit_look_failed(db: AsyncSession) -> None:
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("a metrics bug")

    await db.execute(sa.text("SELECT 1"))
    after_commit(db, broken)
    after_commit(db, seen.append, "still run")
    await db.commit()

    assert seen == ["still run"]


async def test_a_savepoint_rolled_back_keeps_the_transactions_callbacks(
    db: AsyncSession,
) -> None:
    seen: list[str] = []
    await db.execute(sa.text("SELECT 1"))
    after_commit(db, seen.append, "outer")
    savepoint = await db.begin_nested()
    await savepoint.rollback()

    await db.commit()

    assert seen == ["outer"]
