"""One writer at a time on SQLite, queued in the process instead of in SQLite's busy handler;
and live requests ahead of background work that shares their process.

SQLite admits one write transaction at a time. A second writer does not queue: its statement
fails with SQLITE_BUSY and the busy handler retries it after sleeps of up to 100 ms, so under a
burst the unlucky writers wait seconds (a camera-alert benchmark's acknowledgement p99 was 2.7 s)
while the lucky ones pass. Taking this lock just before a transaction's first write, and
releasing it when the transaction ends (commit or rollback), makes the writers of a process queue
in order (FIFO) on the event loop; the lock is held exactly as long as SQLite's own write lock
would be. On PostgreSQL it does nothing: rows are locked, not the database.

Two ways in, for any writer: `before_first_write(session)` for an ORM/Core session (released by
the session's end of transaction), and `async with writing(dialect_name):` around a transaction
run on a driver connection (`app.core.db.driver_connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# One lock per event loop (tests run several loops in one process).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary())
_SESSION_KEY = "sqlite_write_lock"


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def _on_transaction_end(session: AsyncSession, action: Any) -> None:
    """Call `action()` once, when the session's outermost transaction ends."""
    pending = [True]

    def ended(_session: Any, transaction: Any) -> None:
        # A listener cannot remove itself while SQLAlchemy iterates its listeners: it acts once.
        if transaction.parent is None and pending[0]:
            pending[0] = False
            action()

    sa.event.listen(session.sync_session, "after_transaction_end", ended)


async def before_first_write(session: AsyncSession) -> None:
    """Call before the transaction's first INSERT/UPDATE/DELETE (once per transaction)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    if session.info.get(_SESSION_KEY):
        return
    lock = _lock()
    await lock.acquire()
    session.info[_SESSION_KEY] = True

    def release() -> None:
        session.info.pop(_SESSION_KEY, None)
        lock.release()

    _on_transaction_end(session, release)


@contextlib.asynccontextmanager
async def writing(dialect: str) -> AsyncIterator[None]:
    """Hold the write lock for the block (on SQLite; elsewhere nothing): around a whole write
    transaction on a driver connection, its commit included."""
    if dialect != "sqlite":
        yield
        return
    async with _lock():
        yield


# ---------------------------------------------------------------- live requests first
#
# When the worker runs inside `serve`, it shares the event loop, the cores (and on SQLite the
# write lock) with the requests. Requests have a latency target; background processing has a
# throughput target. So background work asks for a moment without foreground requests in flight
# before its expensive parts (`foreground_quiet`, or `wait_while_foreground_busy` in a thread),
# at most `QUIET_MAX_WAIT` seconds at a time so that a steady stream of requests cannot starve it.

QUIET_MAX_WAIT = 1.0


# Requests in flight on every loop of the process, for threads (an int read is atomic).
_in_flight_total = 0


class _Foreground:
    def __init__(self) -> None:
        self.in_flight = 0
        self.quiet = asyncio.Event()
        self.quiet.set()

    def started(self) -> None:
        global _in_flight_total
        self.in_flight += 1
        _in_flight_total += 1
        self.quiet.clear()

    def ended(self) -> None:
        global _in_flight_total
        self.in_flight -= 1
        _in_flight_total -= 1
        if self.in_flight == 0:
            self.quiet.set()


_foreground: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Foreground] = (
    weakref.WeakKeyDictionary())


def _foreground_state() -> _Foreground:
    loop = asyncio.get_running_loop()
    state = _foreground.get(loop)
    if state is None:
        state = _foreground[loop] = _Foreground()
    return state


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """A live request is being answered for the duration of the block."""
    state = _foreground_state()
    state.started()
    try:
        yield
    finally:
        state.ended()


def foreground_session(session: AsyncSession) -> None:
    """A live request is being answered in this session's transaction (ends with it)."""
    state = _foreground_state()
    state.started()
    _on_transaction_end(session, state.ended)


def foreground_busy() -> bool:
    """Whether any event loop of the process has a live request in flight (callable from any
    thread: a plain read of a counter)."""
    return _in_flight_total > 0


def wait_while_foreground_busy(max_wait: float = QUIET_MAX_WAIT, step: float = 0.005) -> None:
    """For background work in a thread: sleep while requests are in flight, at most `max_wait`
    seconds (never call it on the event loop)."""
    deadline = time.monotonic() + max_wait
    while _in_flight_total > 0 and time.monotonic() < deadline:
        time.sleep(step)


async def foreground_quiet(max_wait: float = QUIET_MAX_WAIT) -> None:
    """Wait until no live request is in flight on this loop, or `max_wait` seconds."""
    state = _foreground_state()
    if state.in_flight == 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.quiet.wait(), max_wait)
