"""Periodic jobs of the dossiers domain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.jobs import periodic
from app.core.logging import get_logger
from app.dossiers import service

log = get_logger("dossiers")


@periodic("dossiers.stop_unsupplemented", every=timedelta(minutes=15))
async def stop_unsupplemented(session: AsyncSession, _payload: dict[str, Any]) -> None:
    """Stop processing of dossiers whose citizen let the supplement period run out."""
    stopped = await service.stop_unsupplemented(session)
    if stopped:
        log.info("dossiers_stopped_unsupplemented", count=stopped)
