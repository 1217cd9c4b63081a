from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.admin_units import service
from app.admin_units.schemas import AdminUnitOut
from app.core.db import DbSession

router = APIRouter(prefix="/api/v1/admin-units", tags=["admin units"])


@router.get("", response_model=list[AdminUnitOut], summary="Provinces, wards and communes")
async def list_admin_units(
    session: DbSession,
    parent: Annotated[str | None, Query(description="Only units under this code")] = None,
) -> list[AdminUnitOut]:
    units = await service.list_units(session, parent)
    return [AdminUnitOut.model_validate(u, from_attributes=True) for u in units]
