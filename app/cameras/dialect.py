"""INSERT ... ON CONFLICT for the connected database (PostgreSQL or SQLite): conflict-tolerant
writes without savepoints (pysqlite's SAVEPOINT handling cannot be trusted)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


def insert(session: AsyncSession, table: Any) -> Any:
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)
