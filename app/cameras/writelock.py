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
