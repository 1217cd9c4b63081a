"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.core import errors, metrics
from app.core.config import PROJECT_ROOT
from app.core.db import session_factory
from app.core.handlers import problem_response

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    database: str | None = None
    migration: str | None = None


@lru_cache
def migration_head() -> str | None:
    config = Config(str(Path(PROJECT_ROOT) / "alembic.ini"))
    config.set_main_option("script_location", str(Path(PROJECT_ROOT) / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="The database is reachable and migrated to the head revision",
    responses=errors.responses(errors.UNAVAILABLE),
)
async def readyz(request: Request) -> Health | JSONResponse:
    try:
        async with session_factory()() as session:
            current = (
                await session.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except Exception:
        return problem_response(request, errors.UNAVAILABLE, extra={"database": "unreachable"})
    head = migration_head()
    if current != head:
        return problem_response(
            request, errors.UNAVAILABLE, extra={"migration": current, "expected": head}
        )
    return Health(status="ok", database="ok", migration=current)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
