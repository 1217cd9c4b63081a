"""Counting the SQL statements the application runs: for tests of cost that must not grow with
the data (a query per row is the classic way a feature gets slow as a city grows)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from app.core.db import get_engine


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements run through the engine meanwhile."""
    engine = get_engine().sync_engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
