"""Async database layer for SQLite (embedded default) and PostgreSQL (production, CI).

One request, one transaction: `get_session` commits when the request succeeded and rolls back
otherwise. Services flush, never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import Field
from uuid6 import uuid7

from app.core import clock
from app.core.config import get_settings


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; on SQLite a naive UTC value, made aware again on read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = clock.as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else clock.as_utc(value)


def new_id() -> uuid.UUID:
    return uuid7()


def id_field() -> Any:
    return Field(default_factory=new_id, primary_key=True)


def utc_field(*, nullable: bool = False, index: bool = False, default_now: bool = False) -> Any:
    kwargs: dict[str, Any] = {"sa_type": UTCDateTime, "nullable": nullable, "index": index}
    if default_now:
        kwargs["default_factory"] = clock.now
    elif nullable:
        kwargs["default"] = None
    return Field(**kwargs)


def json_field(*, nullable: bool = False) -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, nullable=nullable)


_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    settings = get_settings()
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=settings.database_echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # On by default: after a database restart no request meets a dead pooled connection.
        # Off saves a round trip per request; then the first query on each stale connection fails.
        pool_pre_ping=settings.database_pool_pre_ping,
    )


def get_engine() -> AsyncEngine:
    global _engine, _sessionmaker
    if _engine is None:
        _engine = make_engine(get_settings().database_url)
        _sessionmaker = async_sessionmaker(_engine, expire_on_commit=False, autoflush=False)
    return _engine


def session_factory() -> async_sessionmaker[AsyncSession]:
    get_engine()
    assert _sessionmaker is not None
    return _sessionmaker


async def dispose_engine() -> None:
    global _engine, _sessionmaker
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None


async def get_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's unit of work.

    An `AppError` with `commit=True` (a failed OTP attempt, a failed login) keeps what was written
    before it was raised: the failure itself is part of the answer and must be remembered.
    """
    async with session_factory()() as session:
        try:
            yield session
        except BaseException as exc:
            if getattr(exc, "commit", False):
                await session.commit()
            else:
                await session.rollback()
            raise
        else:
            await session.commit()


# The request's session, for routes and dependencies. `scope="function"`: the transaction ends
# (commit or rollback) before the response is sent. FastAPI's default for a `yield` dependency
# ends it after, which answers 200 for a change whose commit then fails. Use this alias
# everywhere: FastAPI shares one session per request only between identical declarations.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


def is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text
