"""Hooks through which every domain takes part in a citizen's data export and erasure.

A domain registers an exporter (returns its section of `GET /api/v1/me/export`) and an eraser
(deletes or anonymises its rows, returning what it kept by law and why). `app.identity` calls them
all, so a new domain joins without touching the identity code.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Retained:
    data: str
    reason_vi: str
    reason_en: str
    retention_days: int | None = None


Exporter = Callable[[AsyncSession, uuid.UUID], Awaitable[Any]]
Eraser = Callable[[AsyncSession, uuid.UUID], Awaitable[list[Retained]]]

EXPORTERS: dict[str, Exporter] = {}
ERASERS: dict[str, Eraser] = {}


def register(section: str, *, exporter: Exporter, eraser: Eraser) -> None:
    EXPORTERS[section] = exporter
    ERASERS[section] = eraser


async def export_all(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    return {section: await exporter(session, user_id) for section, exporter in EXPORTERS.items()}


async def erase_all(session: AsyncSession, user_id: uuid.UUID) -> tuple[list[str], list[Retained]]:
    erased: list[str] = []
    retained: list[Retained] = []
    # Reverse registration order: dependants before the account they hang off.
    for section, eraser in reversed(list(ERASERS.items())):
        kept = await eraser(session, user_id)
        retained.extend(kept)
        erased.append(section)
    return erased, retained
