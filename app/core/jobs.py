"""Transactional outbox and worker.

`enqueue()` adds a job row in the caller's transaction, so a job exists if and only if the change
that caused it committed. The worker claims due jobs with a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so many workers are safe), runs the handler and marks the job done *in the handler's
own transaction*: a worker killed mid-job commits nothing, its lease expires and another worker
runs the job again from the start. Failures retry with exponential backoff and jitter; after
`max_attempts` the job is parked as dead with its last error. Handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel

from app.core import clock, metrics
from app.core.config import get_settings
from app.core.db import id_field, json_field, utc_field
from app.core.logging import get_logger

log = get_logger("jobs")

PENDING, RUNNING, DONE, DEAD = "pending", "running", "done", "dead"


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (sa.Index("ix_jobs_due", "status", "run_after"),)

    id: uuid.UUID = id_field()
    kind: str = Field(max_length=100, index=True)
    payload: dict[str, Any] = json_field()
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = 0
    max_attempts: int = 8
    run_after: datetime = utc_field(default_now=True)
    locked_by: str | None = Field(default=None, max_length=200)
    locked_until: datetime | None = utc_field(nullable=True)
    last_error: str | None = Field(default=None)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    created_at: datetime = utc_field(default_now=True)
    finished_at: datetime | None = utc_field(nullable=True)


Handler = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the handler of a job kind (in a domain's `tasks.py`)."""

    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return register


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    delay: timedelta | None = None,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Add a job to the caller's transaction; it runs only once that transaction commits."""
    job = Job(
        kind=kind,
        payload=payload,
        run_after=clock.now() + (delay or timedelta(0)),
        dedupe_key=dedupe_key,
        max_attempts=max_attempts or get_settings().job_max_attempts,
    )
    session.add(job)
    await session.flush()
    return job


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: up to 2^attempts seconds, capped at one hour."""
    ceiling = min(3600.0, 2.0 ** attempts)
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


class Worker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str | None = None,
        lease_seconds: int | None = None,
        poll_interval: float | None = None,
        batch_size: int = 10,
    ) -> None:
        settings = get_settings()
        self.sessions = sessions
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=lease_seconds or settings.job_lease_seconds)
        self.poll_interval = poll_interval or settings.worker_poll_interval_seconds
        self.batch_size = batch_size
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def claim(self) -> list[Job]:
        """Take up to `batch_size` due jobs (or jobs whose lease ran out) under our name."""
        now = clock.now()
        due = (
            sa.select(Job.id)
            .where(
                sa.or_(
                    sa.and_(Job.status == PENDING, Job.run_after <= now),
                    sa.and_(Job.status == RUNNING, Job.locked_until < now),
                )
            )
            .order_by(Job.run_after)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self.sessions() as session, session.begin():
            ids = list((await session.execute(due)).scalars())
            if not ids:
                return []
            await session.execute(
                sa.update(Job)
                .where(Job.id.in_(ids))
                .values(
                    status=RUNNING,
                    locked_by=self.name,
                    locked_until=now + self.lease,
                    attempts=Job.attempts + 1,
                )
            )
            rows = await session.execute(sa.select(Job).where(Job.id.in_(ids)))
            return list(rows.scalars())

    async def run_job(self, job: Job) -> None:
        handler = HANDLERS.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            async with self.sessions() as session, session.begin():
                await handler(session, job.payload)
                # Done in the same transaction as the handler's writes: both or neither.
                result = await session.execute(
                    sa.update(Job)
                    .where(Job.id == job.id, Job.locked_by == self.name, Job.status == RUNNING)
                    .values(status=DONE, finished_at=clock.now(), locked_until=None,
                            last_error=None)
                )
                if result.rowcount != 1:  # our lease was taken over: let the new owner finish
                    raise LeaseLost(job.id)
        except LeaseLost:
            log.warning("job_lease_lost", job_id=str(job.id), kind=job.kind)
            return
        except Exception as exc:
            await self._record_failure(job, exc)
            return
        metrics.JOBS_FINISHED.labels(job.kind, "done").inc()
        log.info("job_done", job_id=str(job.id), kind=job.kind, attempts=job.attempts)

    async def _record_failure(self, job: Job, exc: Exception) -> None:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:4000]
        dead = job.attempts >= job.max_attempts
        values: dict[str, Any] = {
            "status": DEAD if dead else PENDING,
            "last_error": error,
            "locked_by": None,
            "locked_until": None,
        }
        if dead:
            values["finished_at"] = clock.now()
        else:
            values["run_after"] = clock.now() + backoff(job.attempts)
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Job).where(Job.id == job.id, Job.locked_by == self.name).values(**values)
            )
        outcome = "dead" if dead else "retry"
        metrics.JOBS_FINISHED.labels(job.kind, outcome).inc()
        log.warning("job_failed", job_id=str(job.id), kind=job.kind, attempts=job.attempts,
                    outcome=outcome, error=error)

    async def run_once(self) -> int:
        jobs = await self.claim()
        for job in jobs:
            await self.run_job(job)
        return len(jobs)

    async def run_forever(self) -> None:
        log.info("worker_started", worker=self.name)
        while not self._stopping.is_set():
            try:
                ran = await self.run_once()
            except Exception:
                log.exception("worker_loop_error")
                ran = 0
            if ran == 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    pass
        log.info("worker_stopped", worker=self.name)


class LeaseLost(Exception):
    pass


def load_job_modules() -> None:
    """Import every domain's tasks module (and JOB_MODULES) so their handlers register."""
    from app.main import DOMAIN_TASK_MODULES

    for module in [*DOMAIN_TASK_MODULES, *get_settings().job_modules]:
        importlib.import_module(module)
