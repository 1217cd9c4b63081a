"""Transactional outbox and worker.

`enqueue()` adds a job row in the caller's transaction, so a job exists if and only if the change
that caused it committed. The worker claims due jobs with a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so many workers are safe), runs the handler and marks the job done *in the handler's
own transaction*: a worker killed mid-job commits nothing, its lease expires and another worker
runs the job again from the start. Failures retry with exponential backoff and jitter; after
`max_attempts` the job is parked as dead with its last error. Handlers must be idempotent.

Each claim increments `attempts`; the pair (`locked_by`, `attempts`) names one claim, and every
later write of the worker (lease renewal, done, failure) is fenced on it, so a worker that lost
its lease can never overwrite the state of a job another worker has since claimed.

A worker runs up to WORKER_CONCURRENCY jobs at once, each a task on its event loop with its own
session; a handler puts CPU-bound work (OpenCV) in a thread so the loop stays free.

Core knows no domain: the app registers the modules that declare job handlers
(`register_job_modules`), and a worker imports them (`load_job_modules`) before it starts.
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
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel, col

from app.core import clock, metrics
from app.core.config import get_settings
from app.core.db import id_field, json_field, utc_field
from app.core.logging import get_logger
from app.core.tables import rows_matched, table_of

log = get_logger("jobs")

PENDING, RUNNING, DONE, DEAD = "pending", "running", "done", "dead"
BACKOFF_CAP_SECONDS = 3600.0
# Longest pause of the worker loop after repeated database errors.
MAX_ERROR_PAUSE_SECONDS = 30.0


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_due", "status", "run_after"),
        sa.Index("ix_jobs_kind_due", "kind", "status", "run_after"),
    )

    id: uuid.UUID = id_field()
    kind: str = Field(max_length=100)
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


_JOBS = table_of(Job)
_INSERT_JOB = sa.insert(_JOBS)

Handler = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
# Kinds a worker claims one at a time, with no other job: big jobs (a batch of 1,000 pushes)
# claimed ten at a time would leave one worker with the last ten while the others sit idle.
CLAIMED_ALONE: set[str] = set()
# Modules declaring job handlers, registered by the app (see `register_job_modules`).
_JOB_MODULES: dict[str, None] = {}


@dataclass(frozen=True)
class RunningJob:
    """The job a handler is running: `id` makes a good idempotency key for outside services."""

    id: uuid.UUID
    kind: str
    attempt: int
    worker: str


_current: ContextVar[RunningJob | None] = ContextVar("current_job", default=None)


def current_job() -> RunningJob:
    """The job being run; call only from inside a job handler."""
    running = _current.get()
    if running is None:
        raise RuntimeError("current_job() called outside a job handler")
    return running


def job_handler(kind: str, *, claimed_alone: bool = False) -> Callable[[Handler], Handler]:
    """Register the handler of a job kind (in a domain's `tasks.py`). `claimed_alone`: for
    long jobs that several workers should share, a worker takes one such job per claim."""

    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        if claimed_alone:
            CLAIMED_ALONE.add(kind)
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
    """Add a job to the caller's transaction; it runs only once that transaction commits.

    With a `dedupe_key` already used (by a job in any state, committed or earlier in this
    transaction) no new job is added and the existing one is returned.
    """
    job = Job(
        kind=kind,
        payload=payload,
        run_after=clock.now() + (delay or timedelta(0)),
        dedupe_key=dedupe_key,
        max_attempts=max_attempts or get_settings().job_max_attempts,
    )
    row = {column.name: getattr(job, column.name) for column in _JOBS.columns}
    if dedupe_key is None:  # a Core INSERT: a third of the ORM's flush of one object
        await session.execute(_INSERT_JOB, row)
        return job
    # ON CONFLICT DO NOTHING rather than catching the IntegrityError: on PostgreSQL a failed
    # statement aborts the caller's whole transaction, and SQLite savepoints are unreliable here.
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(_JOBS).values(**row).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    existing = await session.execute(sa.select(Job).where(col(Job.dedupe_key) == dedupe_key))
    return existing.scalar_one()


def backoff(attempts: int) -> timedelta:
    """Pause before the next try after `attempts` failed ones: 2^attempts seconds, capped at an
    hour, with "equal jitter" (a random point in the upper half of that) so jobs that failed
    together (a gateway outage) do not all come back at once, yet none comes back too soon."""
    ceiling = min(BACKOFF_CAP_SECONDS, 2.0 ** min(max(attempts, 0), 12))  # 2^12 > cap; no overflow
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


class LeaseLost(Exception):
    """Another worker claimed the job after our lease ran out: it owns the job now."""


class UnknownJobKind(LookupError):
    pass


def _one_claim(rows: list[Any]) -> list[uuid.UUID]:
    """The ids to claim, oldest first: a kind claimed alone by itself when it comes first, else
    the jobs before the first one of such a kind (left, unlocked, to the next claim)."""
    if rows and rows[0].kind in CLAIMED_ALONE:
        return [rows[0].id]
    taken: list[uuid.UUID] = []
    for row in rows:
        if row.kind in CLAIMED_ALONE:
            break
        taken.append(row.id)
    return taken


class JobTimeout(Exception):
    pass


class Worker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str | None = None,
        lease_seconds: float | None = None,
        poll_interval: float | None = None,
        batch_size: int = 10,
        concurrency: int | None = None,
    ) -> None:
        settings = get_settings()
        self.sessions = sessions
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=lease_seconds or settings.job_lease_seconds)
        self.poll_interval = poll_interval or settings.worker_poll_interval_seconds
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency or settings.worker_concurrency)
        self.failed_rounds = 0  # consecutive loop rounds that hit an error (database down, ...)
        self._periodic_slots: dict[str, int] = {}
        self.schedules_periodic = settings.worker_schedules_periodic_jobs
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @staticmethod
    def _due(now: datetime) -> sa.ColumnElement[bool]:
        return sa.or_(
            sa.and_(col(Job.status) == PENDING, col(Job.run_after) <= now),
            sa.and_(col(Job.status) == RUNNING, col(Job.locked_until) < now),
        )

    def _ours(self, job: Job) -> sa.ColumnElement[bool]:
        """Still the claim we made: not re-claimed (attempts moved on) nor finished since."""
        return sa.and_(
            col(Job.id) == job.id,
            col(Job.status) == RUNNING,
            col(Job.locked_by) == self.name,
            col(Job.attempts) == job.attempts,
        )

    async def claim(self, limit: int | None = None) -> list[Job]:
        """Take up to `limit` (at most `batch_size`) due jobs (or jobs whose lease ran out) under
        our name, oldest due first. A job whose last allowed attempt was abandoned (its worker
        died: a crash in native code, out of memory) is parked dead instead of crashing workers
        forever."""
        now = clock.now()
        due = self._due(now)
        pick = (
            sa.select(
                col(Job.id),
                col(Job.kind),
                col(Job.status),
                col(Job.attempts),
                col(Job.max_attempts),
            )
            .where(due)
            .order_by(col(Job.run_after), col(Job.id))
            .limit(min(limit or self.batch_size, self.batch_size))
            .with_for_update(skip_locked=True)
        )
        async with self.sessions() as session, session.begin():
            rows = (await session.execute(pick)).all()
            abandoned = [r for r in rows if r.status == RUNNING and r.attempts >= r.max_attempts]
            fresh = _one_claim(
                [r for r in rows if r.status == PENDING or r.attempts < r.max_attempts]
            )
            if abandoned:
                await self._park_abandoned(session, abandoned, now)
            if not fresh:
                return []
            # `due` again: SQLite ignores FOR UPDATE, so another worker may have claimed these
            # rows since our SELECT; the UPDATE (one writer at a time) only takes what is still due.
            claimed = await session.execute(
                sa.update(Job)
                .where(col(Job.id).in_(fresh), due)
                .values(
                    status=RUNNING,
                    locked_by=self.name,
                    locked_until=now + self.lease,
                    attempts=Job.attempts + 1,
                )
                .returning(Job)
                .execution_options(synchronize_session=False)
            )
            jobs = list(claimed.scalars())
            session.expunge_all()  # plain values for the caller, whatever expire_on_commit says
        return sorted(jobs, key=lambda job: (job.run_after, job.id))

    async def _park_abandoned(self, session: AsyncSession, rows: list[Any], now: datetime) -> None:
        for row in rows:
            error = (
                f"abandoned: attempt {row.attempts} of {row.max_attempts} never finished "
                "(its worker stopped or ran past its lease)"
            )
            await session.execute(
                sa.update(Job)
                .where(
                    col(Job.id) == row.id,
                    col(Job.status) == RUNNING,
                    col(Job.attempts) == row.attempts,
                )
                .values(
                    status=DEAD,
                    last_error=error,
                    finished_at=now,
                    locked_by=None,
                    locked_until=None,
                )
            )
            metrics.JOBS_FINISHED.labels(row.kind, "dead").inc()
            log.error("job_abandoned", job_id=str(row.id), kind=row.kind, attempts=row.attempts)

    async def _renew_lease(self, job: Job) -> None:
        """The lease runs from the start of the job, not from the claim of its batch."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(Job).where(self._ours(job)).values(locked_until=clock.now() + self.lease)
            )
            if rows_matched(result) != 1:
                raise LeaseLost(job.id)

    async def run_job(self, job: Job) -> None:
        """Run one claimed job. Never raises: failures are recorded on the job."""
        metrics.JOB_WAIT.labels(job.kind).observe(
            max(0.0, (clock.now() - job.run_after).total_seconds())
        )
        token = _current.set(RunningJob(job.id, job.kind, job.attempts, self.name))
        try:
            await self._run(job)
        except LeaseLost:
            log.warning("job_lease_lost", job_id=str(job.id), kind=job.kind, worker=self.name)
            return
        except Exception as exc:
            try:
                await self._record_failure(job, exc)
            except Exception:  # database down: the lease runs out and the job is retried then
                log.exception("job_failure_not_recorded", job_id=str(job.id), kind=job.kind)
            return
        finally:
            _current.reset(token)
        metrics.JOBS_FINISHED.labels(job.kind, "done").inc()
        log.info("job_done", job_id=str(job.id), kind=job.kind, attempts=job.attempts)

    async def _run(self, job: Job) -> None:
        handler = HANDLERS.get(job.kind)
        if handler is None:
            raise UnknownJobKind(
                f"no handler registered for job kind {job.kind!r} (is its "
                "tasks module in DOMAIN_TASK_MODULES or JOB_MODULES?)"
            )
        await self._renew_lease(job)
        async with self.sessions() as session, session.begin():
            # A handler may not run past its lease: by then another worker may run the job too,
            # and a hung handler would stall this worker's whole queue.
            deadline = asyncio.timeout(self.lease.total_seconds())
            try:
                async with deadline:
                    await handler(session, job.payload)
            except TimeoutError:
                if deadline.expired():
                    raise JobTimeout(
                        f"handler ran past its {self.lease.total_seconds():g}-second lease"
                    ) from None
                raise
            # Done in the same transaction as the handler's writes: both or neither.
            result = await session.execute(
                sa.update(Job)
                .where(self._ours(job))
                .values(status=DONE, finished_at=clock.now(), locked_until=None, last_error=None)
            )
            if rows_matched(result) != 1:  # our lease was taken over: let the new owner finish
                raise LeaseLost(job.id)

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
            # Fenced: if another worker has claimed the job since, its run is not ours to judge.
            result = await session.execute(sa.update(Job).where(self._ours(job)).values(**values))
        if rows_matched(result) != 1:
            log.warning(
                "job_lease_lost", job_id=str(job.id), kind=job.kind, worker=self.name, error=error
            )
            return
        outcome = "dead" if dead else "retry"
        metrics.JOBS_FINISHED.labels(job.kind, outcome).inc()
        log.warning(
            "job_failed",
            job_id=str(job.id),
            kind=job.kind,
            attempts=job.attempts,
            outcome=outcome,
            error=error,
        )

    async def run_once(self) -> int:
        """Claim one batch and run it, up to `concurrency` jobs at a time; the number claimed."""
        jobs = await self.claim()
        slots = asyncio.Semaphore(self.concurrency)

        async def run(job: Job) -> None:
            async with slots:
                await self.run_job(job)

        await asyncio.gather(*(run(job) for job in jobs))
        return len(jobs)

    async def run_forever(self) -> None:
        """Keep up to `concurrency` jobs running, claiming as slots free up; on stop, let the
        running ones finish."""
        log.info("worker_started", worker=self.name)
        running: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                pause = self.poll_interval
                free = self.concurrency - len(running)
                if free > 0:
                    try:
                        if self.schedules_periodic:
                            await schedule_periodic(self.sessions, self._periodic_slots)
                        jobs = await self.claim(free)
                        self.failed_rounds = 0
                    except Exception:
                        # The database restarting or failing over must not end the worker.
                        self.failed_rounds += 1
                        log.exception("worker_loop_error", failed_rounds=self.failed_rounds)
                        pause = min(
                            MAX_ERROR_PAUSE_SECONDS,
                            self.poll_interval * 2 ** min(self.failed_rounds - 1, 10),
                        )
                        jobs = []
                    running.update(asyncio.create_task(self.run_job(job)) for job in jobs)
                    if jobs:
                        continue  # more may be due: claim again while slots are free
                # Nothing due (or every slot taken): wait for a slot, the next poll or the stop.
                await asyncio.wait(
                    {stopping, *running}, timeout=pause, return_when=asyncio.FIRST_COMPLETED
                )
                running = {task for task in running if not task.done()}
        finally:
            stopping.cancel()
            if running:
                await asyncio.gather(*running)
        log.info("worker_stopped", worker=self.name)


@dataclass(frozen=True)
class Periodic:
    kind: str
    every: timedelta


PERIODIC: dict[str, Periodic] = {}


def periodic(kind: str, every: timedelta) -> Callable[[Handler], Handler]:
    """Register a handler that runs once per `every`, cluster-wide.

    Each worker enqueues the job of the current time slot with the dedupe key
    `periodic:<kind>:<slot>`, so however many workers run, one job per slot exists.
    """

    def register(func: Handler) -> Handler:
        PERIODIC[kind] = Periodic(kind, every)
        return job_handler(kind)(func)

    return register


async def schedule_periodic(
    sessions: async_sessionmaker[AsyncSession], already: dict[str, int] | None = None
) -> int:
    """Enqueue the current slot of every periodic job not yet scheduled by this caller."""
    already = {} if already is None else already
    now = clock.now()
    scheduled = 0
    for task in PERIODIC.values():
        slot = int(now.timestamp() // task.every.total_seconds())
        if already.get(task.kind) == slot:
            continue
        async with sessions() as session, session.begin():
            await enqueue(
                session,
                task.kind,
                {"slot": slot},
                dedupe_key=f"periodic:{task.kind}:{slot}",
                max_attempts=3,
            )
        already[task.kind] = slot
        scheduled += 1
    return scheduled


def register_job_modules(modules: list[str]) -> None:
    """Called by the app at start with its domains' tasks modules."""
    _JOB_MODULES.update(dict.fromkeys(modules))


def load_job_modules() -> None:
    """Import the registered modules (and JOB_MODULES) so that their handlers register."""
    for module in [*_JOB_MODULES, *get_settings().job_modules]:
        importlib.import_module(module)
