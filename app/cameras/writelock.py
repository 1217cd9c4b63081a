"""One writer at a time on SQLite, queued in the process instead of in SQLite's busy handler.

SQLite admits one write transaction at a time. A second writer does not queue: its statement
fails with SQLITE_BUSY and the busy handler retries it after sleeps of up to 100 ms, so under a
burst of alerts the unlucky writers wait seconds (the benchmark's acknowledgement p99 was 2.7 s)
while the lucky ones pass. Taking this lock just before a transaction's first write, and letting
the end of the transaction (commit or rollback) release it, makes the alert writers of a process
queue in order (FIFO) on the event loop; the lock is held exactly as long as SQLite's own write
lock would be. On PostgreSQL it does nothing: rows are locked, not the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# One lock per event loop (tests run several loops in one process).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary())


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def before_first_write(session: AsyncSession) -> None:
    """Call before the transaction's first INSERT/UPDATE/DELETE (once per transaction)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    if session.info.get("cameras_write_lock"):
        return
    lock = _lock()
    await lock.acquire()
    session.info["cameras_write_lock"] = True

    held = [True]

    def release(_session: Any, transaction: Any) -> None:
        # The outermost transaction ended (commit or rollback); a listener cannot remove itself
        # while SQLAlchemy iterates its listeners, so it only acts once.
        if transaction.parent is None and held[0]:
            held[0] = False
            _session.info.pop("cameras_write_lock", None)
            lock.release()

    sa.event.listen(session.sync_session, "after_transaction_end", release)


# ---------------------------------------------------------------- acknowledgements first
#
# When the worker runs inside `serve`, it shares the event loop (and on SQLite the write lock)
# with the alert intake. An acknowledgement has a latency target; processing has a throughput
# target. So the processing job waits for a moment without intake requests in flight before its
# write part (the pictures are being made in the imaging thread meanwhile), at most
# `INTAKE_FIRST_MAX_WAIT` seconds per job so that a steady stream of alerts cannot starve it.

INTAKE_FIRST_MAX_WAIT = 1.0


class _Intake:
    def __init__(self) -> None:
        self.in_flight = 0
        self.quiet = asyncio.Event()
        self.quiet.set()


_intake: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Intake] = (
    weakref.WeakKeyDictionary())


def _intake_state() -> _Intake:
    loop = asyncio.get_running_loop()
    state = _intake.get(loop)
    if state is None:
        state = _intake[loop] = _Intake()
    return state


def intake_started(session: AsyncSession) -> None:
    """An acknowledgement is being made in this session's transaction (ends with it)."""
    state = _intake_state()
    state.in_flight += 1
    state.quiet.clear()
    counted = [True]

    def done(_session: Any, transaction: Any) -> None:
        if transaction.parent is None and counted[0]:
            counted[0] = False
            state.in_flight -= 1
            if state.in_flight == 0:
                state.quiet.set()

    sa.event.listen(session.sync_session, "after_transaction_end", done)


async def intake_quiet(max_wait: float = INTAKE_FIRST_MAX_WAIT) -> None:
    """Wait until no acknowledgement is in flight in this process, or `max_wait` seconds."""
    state = _intake_state()
    if state.in_flight == 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.quiet.wait(), max_wait)
