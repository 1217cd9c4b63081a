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
from app.core.logging import get_logger

router = APIRouter(tags=["health"])
log = get_logger("health")


class Health(BaseModel):
    status: str
    database: str | None = None
    migration: str | None = None


@lru_cache
def migration_heads() -> tuple[str, ...]:
    """The head revision(s) of the code's migrations (several only while branches are unmerged)."""
    config = Config(str(Path(PROJECT_ROOT) / "alembic.ini"))
    config.set_main_option("script_location", str(Path(PROJECT_ROOT) / "migrations"))
    return tuple(sorted(ScriptDirectory.from_config(config).get_heads()))


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
            rows = await session.execute(sa.text("SELECT version_num FROM alembic_version"))
            current = tuple(sorted(rows.scalars()))
    except Exception as exc:
        log.warning("readiness_database_error", error=type(exc).__name__, detail=str(exc)[:300])
        return problem_response(request, errors.UNAVAILABLE, extra={"database": "unreachable"})
    heads = migration_heads()
    if current != heads:
        return problem_response(
            request,
            errors.UNAVAILABLE,
            extra={
                "database": "ok",
                "migration": ",".join(current) or None,
                "expected": ",".join(heads),
            },
        )
    return Health(status="ok", database="ok", migration=",".join(current))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    body, content_type = metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)
