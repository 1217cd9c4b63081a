"""The transactional outbox and its worker: a job exists only if its transaction committed, runs
to completion exactly once even when a worker dies or loses its lease, retries with backoff, and
is parked dead when it keeps failing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import clock, errors, handlers, jobs
from app.core.audit import AuditEvent, record
from app.core.config import PROJECT_ROOT, get_settings
from app.core.db import get_session, make_engine, session_factory
from app.core.jobs import DEAD, DONE, PENDING, RUNNING, Job, Worker, backoff, enqueue
from app.identity.service import SEND_SMS
from tests.conftest import count
from tests.support import job_handlers
from tests.support.job_handlers import BIG, EFFECT, FAIL, HOOK, RECORD

LEASE = timedelta(seconds=60)


async def fetch(job_id: uuid.UUID) -> Job:
    """The job as committed, read in a fresh session."""
    async with session_factory()() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def effects(key: str) -> list[AuditEvent]:
    """The committed effects of the test handlers' runs for `key`."""
    async with session_factory()() as session:
        rows = await session.execute(
            sa.select(AuditEvent).where(
                AuditEvent.action == "test.effect", AuditEvent.resource == key
            )
        )
        return list(rows.scalars())


async def add_job(
    db: AsyncSession, kind: str, payload: dict[str, Any], **options: Any
) -> uuid.UUID:
    job = await enqueue(db, kind, payload, **options)
    await db.commit()
    return job.id


def worker(name: str = "w1", **options: Any) -> Worker:
    return Worker(session_factory(), name=name, lease_seconds=LEASE.total_seconds(), **options)


def advance_to(moment: datetime) -> None:
    clock.advance(moment - clock.now() + timedelta(milliseconds=1))


# ------------------------------------------------------- 1. a job exists iff its change committed


async def test_job_enqueued_in_a_rolled_back_transaction_does_not_exist(db: AsyncSession) -> None:
    await record(db, None, "test.cause")
    await enqueue(db, EFFECT, {"key": "rolled-back"})
    await db.rollback()

    assert (await count(db, Job), await count(db, AuditEvent)) == (0, 0)
    assert await worker().run_once() == 0


async def test_job_enqueued_in_a_committed_transaction_is_pending(db: AsyncSession) -> None:
    job_id = await add_job(db, EFFECT, {"key": "committed"})

    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by) == (PENDING, 0, None)
    assert job.run_after <= clock.now()


async def test_delayed_job_waits_for_its_time(db: AsyncSession) -> None:
    job_id = await add_job(db, EFFECT, {"key": "later"}, delay=timedelta(minutes=5))

    assert await worker().run_once() == 0
    clock.advance(timedelta(minutes=5, seconds=1))
    assert await worker().run_once() == 1
    assert (await fetch(job_id)).status == DONE


def _outbox_app() -> FastAPI:
    """A route that enqueues, then answers as told: the request's transaction decides."""
    api = FastAPI()
    handlers.install(api)

    @api.post("/enqueue/{outcome}")
    async def enqueue_then(
        outcome: str, session: Annotated[AsyncSession, Depends(get_session)]
    ) -> dict[str, str]:
        await enqueue(session, EFFECT, {"key": outcome})
        if outcome == "refused":
            raise errors.AppError(errors.FORBIDDEN)
        if outcome == "crashed":
            raise RuntimeError("a bug after the job was enqueued")
        return {"outcome": outcome}

    return api


async def test_request_that_fails_after_enqueuing_leaves_no_job(db: AsyncSession) -> None:
    transport = httpx.ASGITransport(app=_outbox_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        refused = await http.post("/enqueue/refused")
        crashed = await http.post("/enqueue/crashed")
        assert (refused.status_code, crashed.status_code) == (403, 500)
        assert await count(db, Job) == 0

        assert (await http.post("/enqueue/accepted")).status_code == 200
    rows = (await db.execute(sa.select(Job))).scalars().all()
    assert [(job.payload, job.status) for job in rows] == [({"key": "accepted"}, PENDING)]


async def test_otp_request_enqueues_its_sms_with_the_request(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    response = await client.post(
        "/api/v1/auth/otp", json={"phone": "0912555001", "purpose": "register"}
    )
    assert response.status_code == 202, response.text

    rows = (await db.execute(sa.select(Job))).scalars().all()
    assert [(job.kind, job.status, job.payload["to"]) for job in rows] == [
        (SEND_SMS, PENDING, "+84912555001")
    ]


async def test_same_dedupe_key_enqueues_one_job_and_keeps_the_transaction_usable(
    db: AsyncSession,
) -> None:
    first = await enqueue(db, EFFECT, {"key": "first"}, dedupe_key="once")
    again = await enqueue(db, EFFECT, {"key": "again"}, dedupe_key="once")
    await record(db, None, "test.after-duplicate")  # the caller's transaction still works
    await db.commit()
    later = await enqueue(db, EFFECT, {"key": "later"}, dedupe_key="once")
    await db.commit()

    assert again.id == first.id == later.id
    assert await count(db, Job) == 1
    assert (await fetch(first.id)).payload == {"key": "first"}
    assert await count(db, AuditEvent) == 1


# ------------------------------------------------------------------ 2. a worker killed mid-job


def _start_worker_process(database_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOB_MODULES": json.dumps(["tests.support.job_handlers"]),
        "LOG_LEVEL": "WARNING",
        "WORKER_SCHEDULES_PERIODIC_JOBS": "false",  # only the job under test in the queue
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "worker",
                "--lease-seconds",
                str(int(LEASE.total_seconds())),
                "--poll-interval",
                "0.1",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _wait_for_file(path: Path, process: subprocess.Popen[bytes], log_path: Path) -> None:
    give_up = time.monotonic() + 30
    while not await anyio.Path(path).exists():
        log = await anyio.Path(log_path).read_text()
        assert process.poll() is None, f"worker exited early:\n{log}"
        assert time.monotonic() < give_up, f"worker never started the job:\n{log}"
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_job_leaves_it_to_be_retried_and_it_completes_once(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    job_id = await add_job(
        db, EFFECT, {"key": "killed", "started": str(started), "release": str(release)}
    )
    log_path = tmp_path / "worker.log"
    process = _start_worker_process(database_url, log_path)
    try:
        await _wait_for_file(started, process, log_path)  # effect written, not yet committed
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert started.read_text() == "1"

    job = await fetch(job_id)
    assert (job.status, job.attempts) == (RUNNING, 1)
    assert f":{process.pid}:" in (job.locked_by or "")
    assert await effects("killed") == []  # the killed run committed nothing

    release.touch()
    second = worker("second")
    assert await second.run_once() == 0  # the dead worker's lease still holds
    clock.advance(LEASE + timedelta(seconds=1))
    assert await second.run_once() == 1
    assert await second.run_once() == 0

    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by, job.last_error) == (DONE, 2, "second", None)
    [effect] = await effects("killed")
    assert effect.details == {"job_id": str(job_id), "worker": "second", "attempt": 2}


async def test_worker_process_stopped_by_sigterm_finishes_its_job_first(
    db: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    job_id = await add_job(
        db, EFFECT, {"key": "drained", "started": str(started), "release": str(release)}
    )
    log_path = tmp_path / "worker.log"
    process = _start_worker_process(database_url, log_path)
    try:
        await _wait_for_file(started, process, log_path)
        process.send_signal(signal.SIGTERM)
        release.touch()
        exit_code = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
    assert exit_code == 0, log_path.read_text()

    job = await fetch(job_id)
    assert (job.status, job.attempts) == (DONE, 1)
    assert len(await effects("drained")) == 1


async def test_job_whose_last_attempt_was_abandoned_is_parked_dead(db: AsyncSession) -> None:
    job_id = await add_job(db, EFFECT, {"key": "crashes-workers"}, max_attempts=2)
    for _ in range(2):  # claimed, then its worker dies (say, a crash in native code)
        assert len(await worker("doomed").claim()) == 1
        clock.advance(LEASE + timedelta(seconds=1))

    assert await worker("next").run_once() == 0
    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by) == (DEAD, 2, None)
    assert job.last_error and job.last_error.startswith("abandoned: attempt 2 of 2 never finished")
    assert job.finished_at is not None
    assert await effects("crashes-workers") == []


async def test_handler_running_past_its_lease_is_stopped_and_retried(
    db: AsyncSession, tmp_path: Path
) -> None:
    job_id = await add_job(
        db, EFFECT, {"key": "hangs", "release": str(tmp_path / "never"), "max_wait": 5}
    )

    assert await Worker(session_factory(), name="w", lease_seconds=0.3).run_once() == 1

    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by) == (PENDING, 1, None)
    assert job.last_error == "app.core.jobs.JobTimeout: handler ran past its 0.3-second lease"
    assert await effects("hangs") == []


# ------------------------------------------------------------------- 3. retries and dead jobs


async def test_failing_job_backs_off_then_is_parked_dead_with_its_last_error(
    db: AsyncSession,
) -> None:
    job_id = await add_job(db, FAIL, {"key": "failing"}, max_attempts=3)
    runner = worker()

    for attempt in (1, 2):
        before = clock.now()
        assert await runner.run_once() == 1
        after = clock.now()
        job = await fetch(job_id)
        assert (job.status, job.attempts, job.locked_by) == (PENDING, attempt, None)
        assert job.last_error == f"RuntimeError: gateway said no (attempt {attempt})"
        ceiling = timedelta(seconds=2**attempt)
        assert before + ceiling / 2 <= job.run_after <= after + ceiling
        assert await runner.run_once() == 0  # not due before its backoff ran out
        advance_to(job.run_after)

    assert await runner.run_once() == 1
    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by) == (DEAD, 3, None)
    assert job.last_error == "RuntimeError: gateway said no (attempt 3)"
    assert job.finished_at is not None

    clock.advance(timedelta(days=2))
    assert await runner.run_once() == 0
    assert (await fetch(job_id)).attempts == 3
    assert await effects("failing") == []  # every failed run rolled back its writes


def test_backoff_grows_exponentially_with_jitter_within_bounds() -> None:
    for attempts in [0, 1, 2, 5, 11, 12, 13, 40, 5000]:
        ceiling = min(3600.0, 2.0 ** min(attempts, 12))
        waits = [backoff(attempts).total_seconds() for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), (attempts, waits)
        assert len(set(waits)) > 1  # jittered: jobs that failed together spread out
    assert backoff(5000) <= timedelta(hours=1)


# ------------------------------------------------- 4. one job, one worker at a time; leases


async def test_workers_never_run_the_same_job_at_once(
    db: AsyncSession, database_url: str, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer and no row locks (SKIP LOCKED): one worker at a time")
    job_ids = {(await enqueue(db, RECORD, {"sleep": 0.01})).id for _ in range(200)}
    await db.commit()

    engines = [make_engine(database_url) for _ in range(3)]
    # Default expire_on_commit=True on purpose: claimed jobs must not depend on it.
    workers = [
        Worker(async_sessionmaker(engine), name=f"worker-{n}", lease_seconds=60)
        for n, engine in enumerate(engines)
    ]

    async def drain(one: Worker) -> None:
        while await one.run_once():
            pass

    try:
        await asyncio.gather(*(drain(one) for one in workers))
    finally:
        for engine in engines:
            await engine.dispose()

    rows = (await db.execute(sa.select(Job.status, Job.attempts))).all()
    assert Counter(rows) == {(DONE, 1): 200}
    runs = (
        await db.execute(
            sa.select(AuditEvent.resource, AuditEvent.details).where(
                AuditEvent.action == "test.ran"
            )
        )
    ).all()
    assert Counter(resource for resource, _ in runs) == {str(job_id): 1 for job_id in job_ids}
    by_worker = Counter(details["worker"] for _, details in runs)
    assert set(by_worker) == {one.name for one in workers}, by_worker


async def test_worker_whose_lease_was_taken_over_does_not_run_the_job(
    db: AsyncSession, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    job_id = await add_job(db, EFFECT, {"key": "taken-over", "started": str(started)})
    slow, fast = worker("slow"), worker("fast")
    [stale] = await slow.claim()
    clock.advance(LEASE + timedelta(seconds=1))
    [fresh] = await fast.claim()

    await slow.run_job(stale)
    assert not started.exists()  # the handler never ran: no SMS sent twice
    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by) == (RUNNING, 2, "fast")
    assert await effects("taken-over") == []

    await fast.run_job(fresh)
    assert (await fetch(job_id)).status == DONE
    [effect] = await effects("taken-over")
    assert effect.details["worker"] == "fast"


@pytest.fixture
def hooks() -> Any:
    yield job_handlers.hooks
    job_handlers.hooks.clear()


async def test_worker_that_lost_its_lease_mid_job_cannot_mark_it_done(
    db: AsyncSession, hooks: dict[str, Any]
) -> None:
    job_id = await add_job(db, HOOK, {"hook": "take-over", "key": "mid-job"})
    slow, fast = worker("slow"), worker("fast")
    taken: list[Job] = []

    async def take_over() -> None:  # while `slow` runs the handler, its lease runs out
        clock.advance(LEASE + timedelta(seconds=1))
        taken.extend(await fast.claim())
        hooks["take-over"] = _nothing

    hooks["take-over"] = take_over
    assert await slow.run_once() == 1

    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by) == (RUNNING, 2, "fast")
    assert await effects("mid-job") == []  # slow's writes rolled back with its refused "done"

    await fast.run_job(taken[0])
    assert (await fetch(job_id)).status == DONE
    [effect] = await effects("mid-job")
    assert (effect.details["worker"], effect.details["attempt"]) == ("fast", 2)


async def _nothing() -> None:
    return None


@pytest.mark.parametrize("names", [("slow", "fast"), ("same", "same")], ids=["distinct", "same"])
async def test_failure_of_a_worker_that_lost_its_lease_does_not_clobber_the_new_claim(
    db: AsyncSession, hooks: dict[str, Any], names: tuple[str, str]
) -> None:
    job_id = await add_job(db, HOOK, {"hook": "take-over-then-fail", "key": "clobber"})
    slow, fast = worker(names[0]), worker(names[1])
    taken: list[Job] = []

    async def take_over_then_fail() -> None:
        clock.advance(LEASE + timedelta(seconds=1))
        taken.extend(await fast.claim())
        hooks["take-over-then-fail"] = _nothing
        raise RuntimeError("slow worker's late failure")

    hooks["take-over-then-fail"] = take_over_then_fail
    assert await slow.run_once() == 1

    job = await fetch(job_id)
    assert (job.status, job.attempts, job.locked_by, job.last_error) == (RUNNING, 2, names[1], None)
    assert job.locked_until == taken[0].locked_until  # the new owner's lease, untouched

    await fast.run_job(taken[0])
    job = await fetch(job_id)
    assert (job.status, job.attempts, job.last_error) == (DONE, 2, None)
    assert len(await effects("clobber")) == 1


async def test_lease_of_a_job_starts_when_it_starts_not_when_its_batch_was_claimed(
    db: AsyncSession, hooks: dict[str, Any]
) -> None:
    first = await add_job(db, HOOK, {"hook": "long", "key": "first"})
    second = await add_job(db, HOOK, {"hook": "check", "key": "second"})
    # One job at a time: the second waits for the first, its lease must not run meanwhile.
    batch, other = worker("batch", concurrency=1), worker("other")
    stolen: list[Job] = []

    async def long() -> None:  # the first job of the batch outlives the batch's lease
        clock.advance(LEASE + timedelta(seconds=1))

    async def check() -> None:  # while the second job runs, nobody else may claim it
        stolen.extend(await other.claim())

    hooks.update(long=long, check=check)
    assert await batch.run_once() == 2

    assert stolen == []
    assert [(await fetch(job_id)).attempts for job_id in (first, second)] == [1, 1]
    assert [(await fetch(job_id)).status for job_id in (first, second)] == [DONE, DONE]


async def test_concurrent_claims_never_share_a_job(db: AsyncSession, database_url: str) -> None:
    for n in range(20):
        await enqueue(db, EFFECT, {"key": str(n)})
    await db.commit()
    engines = [make_engine(database_url) for _ in range(4)]
    claimers = [
        Worker(async_sessionmaker(engine), name=f"c{n}", batch_size=20, lease_seconds=60)
        for n, engine in enumerate(engines)
    ]
    try:
        for _ in range(5):  # several rounds: each gives the claims a chance to interleave
            batches = await asyncio.gather(*(one.claim() for one in claimers))
            ids = [job.id for batch in batches for job in batch]
            assert len(ids) == len(set(ids)) == 20
            clock.advance(LEASE + timedelta(seconds=1))  # all up for grabs again
    finally:
        for engine in engines:
            await engine.dispose()
    assert {job.attempts for job in (await db.execute(sa.select(Job))).scalars()} == {5}


async def test_due_jobs_are_claimed_oldest_first_and_future_ones_not_at_all(
    db: AsyncSession,
) -> None:
    later = await add_job(db, EFFECT, {"key": "c"}, delay=timedelta(seconds=30))
    sooner = await add_job(db, EFFECT, {"key": "b"}, delay=timedelta(seconds=10))
    now = await add_job(db, EFFECT, {"key": "a"})
    tomorrow = await add_job(db, EFFECT, {"key": "d"}, delay=timedelta(days=1))
    clock.advance(timedelta(seconds=31))
    one_at_a_time = worker(batch_size=1)

    claimed = [job.id for _ in range(4) for job in await one_at_a_time.claim()]

    assert claimed == [now, sooner, later]
    assert (await fetch(tomorrow)).status == PENDING
    assert [job.attempts for job in [await fetch(job_id) for job_id in claimed]] == [1, 1, 1]


async def test_batch_is_claimed_in_order_with_attempts_counted_once(db: AsyncSession) -> None:
    ids = [await add_job(db, EFFECT, {"key": str(n)}) for n in range(5)]

    claimed = await worker(batch_size=3).claim()

    assert [job.id for job in claimed] == ids[:3]
    assert {(job.status, job.attempts, job.locked_by) for job in claimed} == {(RUNNING, 1, "w1")}
    assert [(await fetch(job_id)).status for job_id in ids] == [RUNNING] * 3 + [PENDING] * 2


async def test_kind_claimed_alone_is_shared_one_job_per_claim_among_workers(
    db: AsyncSession,
) -> None:
    small = await add_job(db, EFFECT, {"key": "small"})
    bigs = [await add_job(db, BIG, {"key": f"big-{n}"}) for n in range(3)]
    after = await add_job(db, EFFECT, {"key": "after"})
    first, second = worker("w1", batch_size=10), worker("w2", batch_size=10)

    # Jobs before a big one come in one batch, without it; then one big job per claim.
    assert [job.id for job in await first.claim()] == [small]
    assert [job.id for job in await second.claim()] == [bigs[0]]
    assert [job.id for job in await first.claim()] == [bigs[1]]
    assert [job.id for job in await second.claim()] == [bigs[2]]
    assert [job.id for job in await first.claim()] == [after]
    assert [(await fetch(job_id)).attempts for job_id in [small, *bigs, after]] == [1] * 5


async def test_worker_runs_its_claimed_jobs_concurrently_never_more_than_its_bound(
    db: AsyncSession, hooks: dict[str, Any]
) -> None:
    ids = [await add_job(db, HOOK, {"hook": "slow", "key": f"slow-{n}"}) for n in range(5)]
    running, most = 0, 0

    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.2)
        running -= 1

    hooks["slow"] = slow
    started = time.monotonic()
    assert await worker(concurrency=2).run_once() == 5

    assert most == 2  # two at a time: never one after another, never more than the bound
    assert time.monotonic() - started < 0.2 * 5
    assert [(await fetch(job_id)).status for job_id in ids] == [DONE] * 5
    assert [len(await effects(f"slow-{n}")) for n in range(5)] == [1] * 5


async def test_worker_loop_runs_a_new_job_while_a_long_one_is_still_running(
    db: AsyncSession, hooks: dict[str, Any]
) -> None:
    release = asyncio.Event()

    async def long() -> None:
        await asyncio.wait_for(release.wait(), 15)

    hooks["long"] = long
    long_id = await add_job(db, HOOK, {"hook": "long", "key": "long"})
    loop_worker = worker("loop", poll_interval=0.02, concurrency=2)
    task = asyncio.create_task(loop_worker.run_forever())
    try:
        give_up = time.monotonic() + 15
        while (await fetch(long_id)).status != RUNNING:
            assert time.monotonic() < give_up
            await asyncio.sleep(0.02)
        # Claimed after the long one, done before it: no job waits behind another.
        await _wait_until_done(await add_job(db, EFFECT, {"key": "short"}), task)
        assert (await fetch(long_id)).status == RUNNING
        release.set()
        await _wait_until_done(long_id, task)
    finally:
        release.set()
        loop_worker.stop()
        await asyncio.wait_for(task, timeout=10)
    assert [len(await effects(key)) for key in ("long", "short")] == [1, 1]


async def test_worker_loop_backs_off_from_a_failing_database(db: AsyncSession) -> None:
    await db.execute(sa.text("ALTER TABLE jobs RENAME TO jobs_away"))  # every query now fails
    await db.commit()
    loop_worker = worker("loop", poll_interval=0.2)
    task = asyncio.create_task(loop_worker.run_forever())
    try:
        await asyncio.sleep(1.0)
    finally:
        loop_worker.stop()
        await asyncio.wait_for(task, timeout=10)
        await db.execute(sa.text("ALTER TABLE jobs_away RENAME TO jobs"))
        await db.commit()
    # Pauses of 0.2, 0.4, 0.8 s after the failures: rounds at 0, 0.2 and 0.6 s, not a retry
    # every few milliseconds.
    assert 1 <= loop_worker.failed_rounds <= 4


async def test_worker_loop_survives_the_database_failing_under_it(db: AsyncSession) -> None:
    job_id = await add_job(db, EFFECT, {"key": "after-outage"})
    await db.execute(sa.text("ALTER TABLE jobs RENAME TO jobs_away"))  # every query now fails
    await db.commit()
    loop_worker = Worker(session_factory(), name="loop", poll_interval=0.02)
    task = asyncio.create_task(loop_worker.run_forever())
    try:
        give_up = time.monotonic() + 15
        while loop_worker.failed_rounds < 2:
            assert not task.done(), task
            assert time.monotonic() < give_up
            await asyncio.sleep(0.02)
    finally:
        await db.execute(sa.text("ALTER TABLE jobs_away RENAME TO jobs"))
        await db.commit()
    try:
        await _wait_until_done(job_id, task)
    finally:
        loop_worker.stop()
        await asyncio.wait_for(task, timeout=10)
    assert loop_worker.failed_rounds == 0
    assert len(await effects("after-outage")) == 1


async def _wait_until_done(job_id: uuid.UUID, task: asyncio.Task[None]) -> None:
    give_up = time.monotonic() + 15
    while (await fetch(job_id)).status != DONE:
        assert not task.done(), task
        assert time.monotonic() < give_up, await fetch(job_id)
        await asyncio.sleep(0.02)


async def test_worker_loop_survives_its_database_connections_being_killed(
    db: AsyncSession, database_url: str, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no server connections to kill")
    engine = make_engine(database_url)
    loop_worker = Worker(async_sessionmaker(engine), name="loop", poll_interval=0.02)
    task = asyncio.create_task(loop_worker.run_forever())
    try:
        await _wait_until_done(await add_job(db, EFFECT, {"key": "before"}), task)
        # What a PostgreSQL restart or failover does to the worker's pooled connections.
        killed = await db.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = '' AND backend_type = 'client backend'"
            )
        )
        assert killed.scalar_one() >= 1
        await db.commit()
        await _wait_until_done(await add_job(db, EFFECT, {"key": "after"}), task)
    finally:
        loop_worker.stop()
        await asyncio.wait_for(task, timeout=10)
        await engine.dispose()
    assert [len(await effects(key)) for key in ("before", "after")] == [1, 1]


# ---------------------------------------------------------- 5. unknown kinds, handler modules


async def test_unknown_job_kind_is_retried_then_parked_dead_with_a_clear_error(
    db: AsyncSession,
) -> None:
    job_id = await add_job(db, "nobody.handles.this", {}, max_attempts=2)
    runner = worker()

    assert await runner.run_once() == 1
    job = await fetch(job_id)
    assert (job.status, job.attempts) == (PENDING, 1)
    advance_to(job.run_after)
    assert await runner.run_once() == 1

    job = await fetch(job_id)
    assert (job.status, job.attempts) == (DEAD, 2)
    assert job.last_error == (
        "app.core.jobs.UnknownJobKind: no handler registered for job kind 'nobody.handles.this' "
        "(is its tasks module in DOMAIN_TASK_MODULES or JOB_MODULES?)"
    )


def test_handlers_of_job_modules_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    module = "tests.support.job_handlers"
    saved = {kind: jobs.HANDLERS.pop(kind) for kind in job_handlers.TEST_KINDS}
    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setenv("JOB_MODULES", json.dumps([module]))
    get_settings.cache_clear()
    try:
        assert not set(job_handlers.TEST_KINDS) & set(jobs.HANDLERS)
        jobs.load_job_modules()
        assert set(job_handlers.TEST_KINDS) <= set(jobs.HANDLERS)
        assert SEND_SMS in jobs.HANDLERS  # and every domain's tasks module
    finally:
        jobs.HANDLERS.update(saved)
        get_settings.cache_clear()  # read again without JOB_MODULES once monkeypatch undoes it


def test_current_job_outside_a_handler_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside a job handler"):
        jobs.current_job()
