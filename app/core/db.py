"""Async database layer for SQLite (embedded default) and PostgreSQL (production, CI).

One request, one transaction: `get_session` commits when the request succeeded and rolls back
otherwise. Services flush, never commit.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only
from sqlmodel import Field
from uuid6 import uuid7

from app.core import clock
from app.core.config import get_settings
from app.core.logging import get_logger


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


log = get_logger(__name__)


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
_held: _HeldConnections | None = None
_held_engine: AsyncEngine | None = None


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
    engine = create_async_engine(
        url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
    )
    if settings.database_pool_pre_ping:
        # On by default: after a database restart no request meets a dead pooled connection.
        # Our own ping, not `pool_pre_ping`: SQLAlchemy 2.1's asyncpg ping wraps `;` in
        # BEGIN/ROLLBACK (three round trips on every check-out, for pgbouncer's sake); this one
        # is one round trip.
        event.listen(engine.sync_engine, "checkout", _ping_on_checkout)
    return engine


def _ping_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    try:
        await_only(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as exc:
        # The pool throws this connection away and checks out another (up to three times).
        raise sa.exc.DisconnectionError(str(exc)) from exc


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
    global _engine, _sessionmaker, _held, _held_engine
    if _held is not None:
        await _held.close()
    for engine in (_held_engine, _engine):
        if engine is not None:
            await engine.dispose()
    _engine = None
    _sessionmaker = None
    _held = None
    _held_engine = None


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back otherwise.

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
            if session.in_transaction():  # nothing to commit for a request that never used it
                await session.commit()


def after_commit(session: AsyncSession, callback: Callable[..., object], *args: Any) -> None:
    """Call `callback(*args)` once the session's transaction has committed, never if it rolls
    back: for effects outside the database (metrics) that must not count a failed attempt."""
    session.sync_session.info.setdefault(_AFTER_COMMIT, []).append((callback, args))


_AFTER_COMMIT = "after_commit_callbacks"


@event.listens_for(sa.orm.Session, "after_commit")
def _run_after_commit(session: sa.orm.Session) -> None:
    for callback, args in session.info.pop(_AFTER_COMMIT, ()):
        try:
            callback(*args)
        except Exception:  # the transaction has committed: its caller must not think otherwise
            log.exception("after_commit_callback_failed")


@event.listens_for(sa.orm.Session, "after_soft_rollback")
def _drop_after_commit(session: sa.orm.Session, previous: sa.orm.SessionTransaction) -> None:
    # Every rollback of the whole transaction, even one that had nothing to undo at the
    # database; a savepoint's rollback keeps them (the transaction may still commit).
    if previous.parent is None:
        session.info.pop(_AFTER_COMMIT, None)


async def get_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's unit of work (see `unit_of_work`)."""
    async with unit_of_work() as session:
        yield session


# The request's session, for routes and dependencies. `scope="function"`: the transaction ends
# (commit or rollback) before the response is sent. FastAPI's default for a `yield` dependency
# ends it after, which answers 200 for a change whose commit then fails. Use this alias
# everywhere: FastAPI shares one session per request only between identical declarations.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


_Held = tuple[AsyncConnection, Any]


class _HeldConnections:
    """A few connections checked out of a pool of their own for good, lent to `Direct` reads.

    Their own pool, not the request sessions': a request holding its session's connection while
    it waits for a held one (or the reverse) can never exhaust the pool it waits on, however
    large the burst at a fresh process.

    Checking a connection out of SQLAlchemy's pool and back costs four times a one-row query on
    an open asyncpg connection (measured: 0.09 against 0.02 ms CPU). These went through the
    engine's own set-up (SQLite pragmas, asyncpg codecs). One that fails, or whose user was
    cancelled mid-statement, is thrown away and its slot opened again on demand; a lost
    connection to the server throws away the idle ones too (they lost theirs with it).

    Fair: a returned connection goes straight to the longest waiter, so a request arriving just
    then cannot take it ahead of those queued (with asyncio.Queue it could, again and again,
    which showed as p99 fifteen times p50 under 32 concurrent requests).
    """

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self._engine = engine
        self._size = max(1, size)
        self._opened = 0
        self._idle: list[_Held] = []  # never non-empty while someone waits
        # Waiters get a connection, or None: a slot was freed, open your own.
        self._waiters: collections.deque[asyncio.Future[_Held | None]] = collections.deque()
        self._closed = False

    async def _open(self) -> _Held:
        self._opened += 1
        try:
            conn = await self._engine.connect()
            try:
                raw = await conn.get_raw_connection()
            except BaseException:
                await conn.close()
                raise
        except BaseException:
            self._free_slot()
            raise
        return conn, raw.driver_connection

    async def _take(self) -> _Held:
        if self._idle:
            return self._idle.pop()
        if self._opened < self._size:
            return await self._open()
        waiter: asyncio.Future[_Held | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            held = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._give(waiter.result())  # handed over as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        return held if held is not None else await self._open()

    def _give(self, held: _Held | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(held)
                return
        if held is not None:
            self._idle.append(held)

    def _free_slot(self) -> None:
        self._opened -= 1
        self._give(None)  # a waiter, if any, opens its own

    async def _discard(self, held: _Held) -> None:
        self._free_slot()
        await held[0].invalidate()  # its state is unknown: never lend it again
        await held[0].close()

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[Any]:
        held = await self._take()
        try:
            yield held[1]
        except BaseException as exc:
            await self._discard(held)
            if _is_disconnect(exc):
                while self._idle:
                    await self._discard(self._idle.pop())
            raise
        if self._closed:
            await held[0].close()
        else:
            self._give(held)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._idle.pop()[0].close()


def _disconnect_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    errors: list[type[BaseException]] = [OSError, sqlite3.OperationalError]
    try:
        import asyncpg

        # InternalClientError: what a connection whose server end was terminated while it sat
        # idle raises at its next use (seen with asyncpg 0.32: "cannot switch to state").
        errors += [
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
            asyncpg.InternalClientError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CannotConnectNowError,
        ]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    return tuple(errors)


# What the drivers raise when the server is gone, busy or locked: answered 503 with Retry-After,
# like SQLAlchemy's OperationalError (the handler in app/core/handlers.py).
DRIVER_UNAVAILABLE = _disconnect_errors()


def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, DRIVER_UNAVAILABLE) and not _is_locked(exc)


def _is_locked(exc: BaseException) -> bool:
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


@asynccontextmanager
async def _driver_connection() -> AsyncIterator[Any]:
    """The database driver's own connection (asyncpg or aiosqlite), for `Direct` reads, from
    an engine of its own (see `_HeldConnections`). No transaction is open on it."""
    global _held, _held_engine
    if _held is None:
        dialect = get_engine().dialect.name
        _held_engine = make_engine(get_settings().database_url)
        _held = _HeldConnections(_held_engine, direct_connections(dialect))
    async with _held.lend() as connection:
        yield connection


def direct_connections(dialect: str) -> int:
    """DATABASE_DIRECT_CONNECTIONS, else by database. On PostgreSQL each connection is a server
    process contending for the same cores, and a process's one event loop keeps two busy (one
    statement in flight while the other's answer is handled): measured on 2 cores, GET /api/v1/me
    did 26% more requests/s with 2 than with 4, at 0.14 against 0.23 ms of database CPU each. On
    SQLite the connections are threads of this process whose reads run side by side: there 4 did
    better (GET /api/v1/me at 52-54% of the bare endpoint, against 40% with 2)."""
    configured = get_settings().database_direct_connections
    if configured is not None:
        return configured
    return 4 if dialect == "sqlite" else 2


_REQUIRED = object()


@dataclass(frozen=True)
class _Bind:
    name: str
    process: Callable[[Any], Any] | None
    default: Any


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: list[_Bind]
    columns: list[str]
    results: list[Callable[[Any], Any] | None]


class Direct:
    """A Core SELECT run straight on the driver's connection, for a short named allow-list of
    read-only hot queries (GET /api/v1/me and the caller's scope, the nearby feed, the staff
    queues). Never a write: every change happens in the request's transaction.

    The ORM session and even a Core `execute` cost several times the query itself (measured:
    0.28 ms CPU against 0.10 ms on PostgreSQL for a one-row read, plus BEGIN and COMMIT round
    trips). The statement is compiled once per dialect by SQLAlchemy, and each value goes through
    its column type's own bind and result processors, so what is written and read is exactly
    what the ORM would read. One statement, one round trip.

    A read that meets a lost connection is tried once more on a new one; a second failure is
    the caller's error, which the app answers 503 with Retry-After.
    """

    def __init__(self, statement: sa.Select[Any]) -> None:
        if not isinstance(statement, sa.Select):
            raise TypeError("Direct runs read-only SELECT statements only")
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compiled_for(self, dialect: sa.Dialect) -> _Compiled:
        """The SQL and value processors for `dialect`, compiled once."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            done = self.statement.compile(dialect=dialect)
            binds = [
                _Bind(
                    name,
                    bind.type._cached_bind_processor(dialect),
                    _REQUIRED if bind.required else bind.effective_value,
                )
                for name in done.positiontup or ()
                for bind in (done.binds[name],)
            ]
            columns = done._result_columns  # (key, label, objects, type), in order
            compiled = self._compiled[dialect.name] = _Compiled(
                sql=done.string,
                binds=binds,
                columns=[c[1] for c in columns],
                results=[_result_processor(c[3], dialect) for c in columns],
            )
        return compiled

    @staticmethod
    def _bind_args(binds: list[_Bind], params: dict[str, Any]) -> list[Any]:
        """The driver's positional arguments, each value through its column type's processor."""
        args = []
        for bind in binds:
            value = (
                params[bind.name]
                if bind.default is _REQUIRED
                else params.get(bind.name, bind.default)
            )  # a value built into the statement (a LIMIT, say)
            args.append(bind.process(value) if bind.process else value)
        return args

    async def fetch_all(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        dialect = get_engine().dialect
        compiled = self._compiled_for(dialect)
        args = self._bind_args(compiled.binds, params)
        try:
            rows = await self._run(dialect.name, compiled.sql, args)
        except DRIVER_UNAVAILABLE as exc:
            if not _is_disconnect(exc):
                raise sa.exc.OperationalError(compiled.sql, args, exc) from exc
            try:
                rows = await self._run(dialect.name, compiled.sql, args)
            except DRIVER_UNAVAILABLE as again:
                raise sa.exc.OperationalError(compiled.sql, args, again) from again
        return [_row(compiled, row) for row in rows]

    @staticmethod
    async def _run(dialect: str, sql: str, args: list[Any]) -> Any:
        async with _driver_connection() as conn:
            if dialect != "sqlite":
                return await conn.fetch(sql, *args)
            return await conn.execute_fetchall(sql, args)

    async def fetch_one(self, params: dict[str, Any]) -> dict[str, Any] | None:
        rows = await self.fetch_all(params)
        return rows[0] if rows else None


def _result_processor(
    type_: sa.types.TypeEngine[Any], dialect: sa.Dialect
) -> Callable[[Any], Any] | None:
    try:
        return type_._cached_result_processor(dialect, None)
    except (sa.exc.SQLAlchemyError, TypeError):  # TypeError: formatting its "unknown type" error
        # asyncpg's numeric processors choose by the column's wire type, which a statement
        # compiled ahead does not know. The driver gives floats for float columns and Decimals
        # for numeric ones; only the Python type the column asks for is left to make sure of.
        numeric = isinstance(type_, (sa.Float, sa.Numeric))  # siblings in SQLAlchemy 2.1
        if numeric and not type_.asdecimal:  # type: ignore[attr-defined]
            return lambda value: None if value is None else float(value)
        if numeric:
            return lambda value: (
                value if value is None or isinstance(value, Decimal) else (Decimal(str(value)))
            )
        raise


def _row(compiled: _Compiled, row: Any) -> dict[str, Any]:
    return {
        name: process(value) if process else value
        for name, process, value in zip(compiled.columns, compiled.results, tuple(row), strict=True)
    }


def is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text
