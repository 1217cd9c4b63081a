"""The one place that tells the time, so tests can move it (`freeze`/`advance`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + _offset


def advance(delta: timedelta) -> None:
    """Move the clock forward (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC by our convention."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
