"""HTTP endpoints of the cameras domain (registry, staff views, device positions). Thin: parse,
call the service, shape the answer. The signed internal webhooks are in `internal_router`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.admin_units.errors import WARD_NOT_FOUND
from app.cameras import errors, positions, service
from app.cameras.models import Camera
from app.cameras.schemas import (
    AlertList,
    AlertOut,
    CameraCreate,
    CameraList,
    CameraOut,
    CameraUpdate,
    DeviceLocationForget,
    DeviceLocationIn,
    DevicePositionIn,
    DevicePositionOut,
)
from app.core import audit
from app.core import errors as core_errors
from app.core.errors import AppError, responses
from app.identity.dependencies import (
    CurrentPrincipal,
    DbSession,
    Principal,
    StaffPrincipal,
    audit_context,
    require_roles,
)
from app.identity.roles import Role

router = APIRouter()
admin = APIRouter(prefix="/api/v1/admin/cameras", tags=["admin: cameras"])
staff = APIRouter(prefix="/api/v1/staff", tags=["staff: cameras"])
devices = APIRouter(prefix="/api/v1/devices", tags=["devices"])

CityAdmin = Annotated[Principal, Depends(require_roles(Role.CITY_ADMIN))]

AUTH_ERRORS = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID, core_errors.FORBIDDEN)
BODY_ERRORS = (
    core_errors.VALIDATION_FAILED,
    core_errors.MALFORMED_JSON,
    core_errors.BODY_TOO_LARGE,
)


# ---------------------------------------------------------------- registry (city admins)


@admin.post(
    "",
    response_model=CameraOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a camera",
    responses=responses(
        *AUTH_ERRORS,
        errors.CAMERA_CODE_TAKEN,
        errors.CAMERA_OUTSIDE_SERVICE_AREA,
        WARD_NOT_FOUND,
        *BODY_ERRORS,
    ),
)
async def create_camera(body: CameraCreate, _: CityAdmin, session: DbSession) -> Camera:
    return await service.create_camera(session, body)


@admin.get("", response_model=CameraList, summary="List cameras", responses=responses(*AUTH_ERRORS))
async def list_cameras(
    _: CityAdmin,
    session: DbSession,
    ward_code: Annotated[str | None, Query(max_length=32)] = None,
    status_: Annotated[
        Literal["active", "offline", "disabled"] | None, Query(alias="status")
    ] = None,
) -> Any:
    return {"items": await service.list_cameras(session, ward_code=ward_code, status=status_)}


@admin.get(
    "/{camera_id}",
    response_model=CameraOut,
    summary="One camera",
    responses=responses(*AUTH_ERRORS, errors.CAMERA_NOT_FOUND),
)
async def get_camera(camera_id: uuid.UUID, _: CityAdmin, session: DbSession) -> Camera:
    return await service.get_camera(session, camera_id)


@admin.patch(
    "/{camera_id}",
    response_model=CameraOut,
    summary="Change a camera (name, place, ward, direction; disable or enable it)",
    responses=responses(
        *AUTH_ERRORS,
        errors.CAMERA_NOT_FOUND,
        errors.CAMERA_OUTSIDE_SERVICE_AREA,
        WARD_NOT_FOUND,
        *BODY_ERRORS,
    ),
)
async def update_camera(
    camera_id: uuid.UUID, body: CameraUpdate, _: CityAdmin, session: DbSession
) -> Camera:
    return await service.update_camera(session, camera_id, body)


# ---------------------------------------------------------------- ward staff


def _ward_of(principal: Principal) -> str | None:
    """City admins see every ward; other staff only their own (none without a ward)."""
    if principal.role == Role.CITY_ADMIN:
        return None
    return principal.user.ward_code or "-"


@staff.get(
    "/cameras",
    response_model=CameraList,
    summary="Cameras of my ward",
    responses=responses(*AUTH_ERRORS),
)
async def staff_cameras(principal: StaffPrincipal, session: DbSession) -> Any:
    return {"items": await service.list_cameras(session, ward_code=_ward_of(principal))}


@staff.get(
    "/camera-alerts",
    response_model=AlertList,
    summary="Latest camera alerts of my ward",
    responses=responses(*AUTH_ERRORS),
)
async def staff_alerts(
    principal: StaffPrincipal,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    incident_id: Annotated[
        str | None, Query(max_length=64, description="Only the camera evidence of this incident")
    ] = None,
) -> Any:
    return {
        "items": await service.list_alerts(
            session, ward_code=_ward_of(principal), incident_id=incident_id, limit=limit
        )
    }


async def _visible_alert(session: Any, principal: Principal, alert_id: uuid.UUID) -> Any:
    alert, camera = await service.get_alert(session, alert_id)
    ward = _ward_of(principal)
    if ward is not None and camera.ward_code != ward:
        raise AppError(errors.ALERT_NOT_FOUND)  # another ward's alert: not even its existence
    return alert


@staff.get(
    "/camera-alerts/{alert_id}",
    response_model=AlertOut,
    summary="One camera alert",
    responses=responses(*AUTH_ERRORS, errors.ALERT_NOT_FOUND),
)
async def staff_alert(alert_id: uuid.UUID, principal: StaffPrincipal, session: DbSession) -> Any:
    return await _visible_alert(session, principal, alert_id)


@staff.get(
    "/camera-alerts/{alert_id}/snapshot/{variant}",
    response_class=Response,
    summary="A picture of the alert (JPEG)",
    description="`thumbnail` (320 px) and `public` (at most 1280 px) have faces and licence "
    "plates blurred. `original` is the picture as received: reading it is written to the "
    "audit log with the reason given.",
    responses={
        200: {"content": {"image/jpeg": {}}},
        **responses(
            *AUTH_ERRORS,
            errors.ALERT_NOT_FOUND,
            errors.SNAPSHOT_NOT_AVAILABLE,
            core_errors.VALIDATION_FAILED,
        ),
    },
)
async def staff_snapshot(
    alert_id: uuid.UUID,
    variant: Literal["thumbnail", "public", "original"],
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    alert = await _visible_alert(session, principal, alert_id)
    if variant == "original":
        if not reason:
            raise AppError(
                core_errors.VALIDATION_FAILED,
                extra={
                    "errors": [
                        {
                            "field": "query.reason",
                            "code": "missing",
                            "message": "a reason is required to see the unblurred picture",
                        }
                    ]
                },
            )
        await audit.record(
            session,
            audit_context(request, principal),
            "cameras.original_snapshot_read",
            resource=f"camera_alert:{alert.id}",
            reason=reason,
        )
    picture = await service.snapshot(session, alert.id, variant)
    return Response(
        picture.content, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"}
    )


# ---------------------------------------------------------------- device positions


POSITION_DESCRIPTION = (
    "Only while the citizen has traffic alerts turned on. The server keeps the grid cell (about "
    "1 km) of the latest report, never the point and never a history, and deletes it once it is "
    "6 hours old. The push token is in the body: a URL is written to logs along the way."
)
LEGACY_PATH = (
    "Deprecated: the push token in the path. Use the same method on "
    "`/api/v1/devices/location` with the token in the body; this path goes in the next "
    "version of the API."
)


@devices.put(
    "/location",
    response_model=DevicePositionOut,
    summary="Report this device's coarse position, for warnings about incidents nearby",
    description=POSITION_DESCRIPTION,
    responses=responses(*AUTH_ERRORS, errors.DEVICE_NOT_FOUND, errors.NOT_OPTED_IN, *BODY_ERRORS),
)
async def put_location(
    body: DeviceLocationIn, principal: CurrentPrincipal, session: DbSession
) -> Any:
    return await positions.report(session, principal.user.id, body.token, body.lat, body.lon)


@devices.delete(
    "/location",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget this device's position",
    responses=responses(*AUTH_ERRORS, *BODY_ERRORS),
)
async def delete_location(
    body: DeviceLocationForget, principal: CurrentPrincipal, session: DbSession
) -> Response:
    await positions.forget(session, principal.user.id, body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@devices.put(
    "/{token}/location",
    response_model=DevicePositionOut,
    deprecated=True,
    summary="Report this device's coarse position (deprecated path)",
    description=LEGACY_PATH,
    responses=responses(*AUTH_ERRORS, errors.DEVICE_NOT_FOUND, errors.NOT_OPTED_IN, *BODY_ERRORS),
)
async def put_location_legacy(
    token: str, body: DevicePositionIn, principal: CurrentPrincipal, session: DbSession
) -> Any:
    return await positions.report(session, principal.user.id, token, body.lat, body.lon)


@devices.delete(
    "/{token}/location",
    status_code=status.HTTP_204_NO_CONTENT,
    deprecated=True,
    summary="Forget this device's position (deprecated path)",
    description=LEGACY_PATH,
    responses=responses(*AUTH_ERRORS),
)
async def delete_location_legacy(
    token: str, principal: CurrentPrincipal, session: DbSession
) -> Response:
    await positions.forget(session, principal.user.id, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# The signed webhooks from the operations centre are `app.cameras.internal_router`.
for sub in (admin, staff, devices):
    router.include_router(sub)
