"""The worker's imaging pool: OpenCV for alert snapshots, off the event loop and ahead of time.

The job worker runs its claimed jobs one after another, so processing an alert used to be
"OpenCV (about 40 ms on one core), then the database work", never both at once. Here the first
camera job of a claimed batch starts the pictures of every camera job this worker has claimed
(`locked_by` is ours, so no other worker is doing them) in a small thread pool; while job 1
writes, jobs 2..n are being blurred on another core. A result is only a cache: the job still
does all its writes in its own transaction, and a job whose pictures were not started ahead (or
were dropped) makes them itself. OpenCV releases the GIL while it works.

The pool has a thread per core: OpenCV is most of the work of processing an alert, and the event
loop needs little of a core for the rest. When the worker runs inside `serve`, a picture is not
started while requests are in flight in the process (`app.core.writelock.foreground_busy`; waiting
at most a second at a time), so that a burst of alerts is acknowledged at full speed and its
pictures are made right after; a picture already started runs on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import imaging
from app.cameras.models import CameraAlert, CameraSnapshot
from app.core import writelock
from app.core.config import get_settings
from app.core.jobs import RUNNING, Job, current_job

THREADS = max(1, os.cpu_count() or 2)
# Results kept for jobs not yet run; beyond this the oldest are dropped (made again if needed).
MAX_AHEAD = 32

Outcome = imaging.Processed | imaging.SnapshotError
_pool: concurrent.futures.ThreadPoolExecutor | None = None
# alert id -> (the original JPEG, its pictures being made)
_ahead: OrderedDict[uuid.UUID, tuple[bytes, concurrent.futures.Future[Outcome]]] = OrderedDict()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="camera-imaging")
    return _pool


def _work(data: bytes, boxes: list[dict[str, Any]], max_pixels: int) -> Outcome:
    writelock.wait_while_foreground_busy()
    try:
        return imaging.process(data, boxes, max_pixels)
    except imaging.SnapshotError as exc:  # an answer, not a failure of the job
        return exc


def _submit(data: bytes, boxes: list[dict[str, Any]]) -> concurrent.futures.Future[Outcome]:
    return _executor().submit(_work, data, boxes, get_settings().camera_snapshot_max_pixels)


async def prefetch_claimed(session: AsyncSession, alert_id: uuid.UUID, kind: str) -> None:
    """Start the pictures of the `kind` jobs this worker holds (outside a job: nothing). When
    this alert's pictures were started ahead, its batch's were too: no query then."""
    if alert_id in _ahead:
        return
    try:
        worker = current_job().worker
    except RuntimeError:
        return
    payloads = (await session.execute(
        sa.select(Job.payload).where(Job.kind == kind, Job.status == RUNNING,
                                     Job.locked_by == worker)
    )).scalars()
    wanted = [uuid.UUID(p["alert_id"]) for p in payloads if "alert_id" in p]
    wanted = [alert_id for alert_id in wanted if alert_id not in _ahead]
    if not wanted:
        return
    rows = await session.execute(
        sa.select(CameraSnapshot.alert_id, CameraSnapshot.content, CameraAlert.boxes)
        .join(CameraAlert, CameraAlert.id == CameraSnapshot.alert_id)
        .where(CameraSnapshot.alert_id.in_(wanted), CameraSnapshot.variant == "original",
               CameraAlert.status == "queued")
    )
    for alert_id, content, boxes in rows:
        _ahead[alert_id] = (content, _submit(content, boxes))
    while len(_ahead) > MAX_AHEAD:
        _ahead.popitem(last=False)


async def result(
    session: AsyncSession, alert_id: uuid.UUID, boxes: list[dict[str, Any]]
) -> tuple[bytes, Outcome] | None:
    """The original and the pictures of this alert: started ahead, or made now (None: no
    original stored)."""
    ahead = _ahead.pop(alert_id, None)
    if ahead is None:
        content = (await session.execute(
            sa.select(CameraSnapshot.content).where(CameraSnapshot.alert_id == alert_id,
                                                    CameraSnapshot.variant == "original")
        )).scalar_one_or_none()
        if content is None:
            return None
        ahead = (content, _submit(content, boxes))
    content, future = ahead
    return content, await asyncio.wrap_future(future)
