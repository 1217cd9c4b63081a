"""Job handlers used only by the tests of the outbox and worker (tests/core/test_jobs.py).

Loaded by a real worker process through JOB_MODULES='["tests.support.job_handlers"]'. Each one
writes its effect as an audit row in the job's own transaction, so the tests can count how many
runs of a job committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import record
from app.core.jobs import current_job, job_handler

EFFECT = "test.effect"
RECORD = "test.record"
FAIL = "test.fail"
HOOK = "test.hook"
BIG = "test.big"  # claimed alone, like an announcement's batch of 1,000 pushes
TEST_KINDS = (EFFECT, RECORD, FAIL, HOOK, BIG)

# Coroutines the test wants run inside a handler (HOOK jobs), by name.
hooks: dict[str, Callable[[], Awaitable[None]]] = {}


async def _write_effect(session: AsyncSession, action: str, key: str) -> None:
    job = current_job()
    await record(
        session,
        None,
        action,
        resource=key,
        details={"job_id": str(job.id), "worker": job.worker, "attempt": job.attempt},
    )


@job_handler(EFFECT)
async def effect(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Write the effect, say so in the `started` file, then wait for the `release` file (for at
    most `max_wait` seconds, so a broken worker fails the test instead of hanging it)."""
    await _write_effect(session, "test.effect", payload["key"])
    if started := payload.get("started"):
        await anyio.Path(started).write_text(str(current_job().attempt), encoding="utf-8")
    if release := payload.get("release"):
        with anyio.move_on_after(payload.get("max_wait", 60)):
            # Polled: the test that releases the handler may live in another process.
            while not await anyio.Path(release).exists():  # noqa: ASYNC110
                await asyncio.sleep(0.02)


@job_handler(BIG, claimed_alone=True)
async def big(session: AsyncSession, payload: dict[str, Any]) -> None:
    await _write_effect(session, "test.effect", payload["key"])


@job_handler(RECORD)
async def record_run(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Record which worker ran which job, taking a little time like real work."""
    await _write_effect(session, "test.ran", str(current_job().id))
    await asyncio.sleep(payload.get("sleep", 0))


@job_handler(FAIL)
async def fail(session: AsyncSession, payload: dict[str, Any]) -> None:
    await _write_effect(session, "test.effect", payload.get("key", "fail"))  # rolled back
    raise RuntimeError(f"gateway said no (attempt {current_job().attempt})")


@job_handler(HOOK)
async def hook(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Run the test's hook (e.g. another worker taking the job over), then write the effect."""
    await hooks[payload["hook"]]()
    await _write_effect(session, "test.effect", payload["key"])
