"""The typing SQLModel and SQLAlchemy leave to the caller, said once: the Core table of a table
class (SQLModel sets `__table__` but does not declare it) and the rows a DML statement matched."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> sa.Table:
    table: sa.Table = model.__table__  # type: ignore[attr-defined]  # set by SQLModel, untyped
    return table


def rows_matched(result: sa.Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched: SQLAlchemy returns a CursorResult for them, which
    AsyncSession.execute's types do not say."""
    return cast("sa.CursorResult[Any]", result).rowcount
