"""Audit entries of the provider's hot paths, written cheaply.

`insert` writes one entry with a prebuilt Core statement in the caller's transaction (the same
guarantee as `app.core.audit.record`, without the ORM unit of work).

`queue` is for `client_credentials` token issues only. Such a token is a signature and nothing
else: no row is written to issue it, so its audit entry would be the request's only write, and a
transaction per token (BEGIN, INSERT, COMMIT and its WAL flush) would cost more than the rest of
the request together. Entries are kept in process and inserted together, one statement per batch,
at most `FLUSH_SECONDS` after the issue (sooner when `BATCH_SIZE` are waiting), and on shutdown.
What this gives up, knowingly: if the process dies abruptly (SIGKILL, power) the entries of the
last second are lost. The tokens they record carry no personal data, and every client
authentication failure, user token, consent and revocation is still written in its own
transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.audit import AuditContext, AuditEvent
from app.core.db import new_id, session_factory

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
BATCH_SIZE = 500
# Kept across failed flushes (database down) before the oldest are dropped, with an error logged.
MAX_PENDING = 100_000

_table = AuditEvent.__table__  # type: ignore[attr-defined]
_INSERT = sa.insert(_table)

_pending: list[dict[str, Any]] = []
_flusher: asyncio.Task[None] | None = None
_wakeup: asyncio.Event | None = None


def row(ctx: AuditContext | None, action: str, *, at: datetime,
         subject_id: uuid.UUID | None, resource: str | None,
         details: dict[str, Any] | None) -> dict[str, Any]:
    ctx = ctx or AuditContext()
    return {"id": new_id(), "at": at, "actor_id": ctx.actor_id, "actor_role": ctx.actor_role,
            "action": action, "subject_id": subject_id, "resource": resource, "reason": None,
            "ip": ctx.ip, "request_id": ctx.request_id, "details": details or {}}


async def insert(db: AsyncSession, ctx: AuditContext | None, action: str, *,
                 subject_id: uuid.UUID | None = None, resource: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
    """One entry in the caller's transaction (kept if and only if the action commits)."""
    await db.execute(_INSERT, row(ctx, action, at=clock.now(), subject_id=subject_id,
                                   resource=resource, details=details))


def queue(ctx: AuditContext | None, action: str, *, resource: str | None = None,
          details: dict[str, Any] | None = None) -> None:
    """An entry written by the next batch (see the module's note for what this trades)."""
    global _flusher, _wakeup
    _pending.append(row(ctx, action, at=clock.now(), subject_id=None, resource=resource,
                         details=details))
    loop = asyncio.get_running_loop()
    if _flusher is None or _flusher.done() or _flusher.get_loop() is not loop:
        _wakeup = asyncio.Event()
        _flusher = loop.create_task(_flush_forever(_wakeup), name="oauth-audit-flusher")
    if len(_pending) >= BATCH_SIZE and _wakeup is not None:
        _wakeup.set()


async def queue_from(_db: AsyncSession, ctx: AuditContext | None, action: str, *,
                     resource: str | None = None, details: dict[str, Any] | None = None) -> None:
    """`queue`, as a step deferred until authlib returns (see `server.Bridge.defer`)."""
    queue(ctx, action, resource=resource, details=details)


async def _flush_forever(wakeup: asyncio.Event) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), FLUSH_SECONDS)
        wakeup.clear()
        try:
            await flush()
        except Exception:  # the database is away: keep the entries, try again
            log.exception("writing queued audit entries failed; %d waiting", len(_pending))
        if not _pending:
            return  # restarted by the next `queue`


async def flush() -> int:
    """Write every queued entry now, in one transaction of its own. Returns how many."""
    if not _pending:
        return 0
    batch = _pending[:]
    del _pending[:len(batch)]
    try:
        async with session_factory()() as session, session.begin():
            await session.execute(_INSERT, batch)
    except BaseException:
        _pending[:0] = batch
        if len(_pending) > MAX_PENDING:
            dropped = len(_pending) - MAX_PENDING
            del _pending[:dropped]
            log.error("dropped %d queued audit entries (database unavailable)", dropped)
        raise
    return len(batch)


async def stop() -> None:
    """On shutdown: stop the flusher and write what is left."""
    global _flusher
    task, _flusher = _flusher, None
    if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await flush()
