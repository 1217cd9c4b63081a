"""HTTP endpoints of the cameras domain. Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.admin_units.errors import WARD_NOT_FOUND
from app.cameras import errors, frigate, positions, service
from app.cameras.models import Camera
from app.cameras.schemas import (
    ALERT_EXAMPLE,
    AlertAccepted,
    AlertList,
    AlertOut,
    CameraAlertIn,
    CameraCreate,
    CameraList,
    CameraOut,
    CameraUpdate,
    DevicePositionIn,
    DevicePositionOut,
    FrigateEvent,
    FrigateIgnored,
    HeartbeatIn,
    HeartbeatOut,
)
from app.cameras.webhooks import SignedWebhookRoute, WebhookMeta, webhook_meta
from app.core import audit
from app.core import errors as core_errors
from app.core.errors import AppError, responses
from app.core.internal import INTERNAL_NETWORK_FORBIDDEN
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
internal = APIRouter(prefix="/internal/v1", tags=["internal: camera alerts"],
                     route_class=SignedWebhookRoute)
admin = APIRouter(prefix="/api/v1/admin/cameras", tags=["admin: cameras"])
staff = APIRouter(prefix="/api/v1/staff", tags=["staff: cameras"])
devices = APIRouter(prefix="/api/v1/devices", tags=["devices"])

CityAdmin = Annotated[Principal, Depends(require_roles(Role.CITY_ADMIN))]
Webhook = Annotated[WebhookMeta, Depends(webhook_meta)]

AUTH_ERRORS = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID, core_errors.FORBIDDEN)
BODY_ERRORS = (core_errors.VALIDATION_FAILED, core_errors.MALFORMED_JSON,
               core_errors.BODY_TOO_LARGE)
WEBHOOK_ERRORS = (errors.WEBHOOK_UNSIGNED, errors.WEBHOOK_BAD_SIGNATURE, errors.WEBHOOK_TIMESTAMP,
                  errors.WEBHOOK_NOT_CONFIGURED, INTERNAL_NETWORK_FORBIDDEN)
ALERT_ERRORS = (errors.CAMERA_UNKNOWN, errors.CAMERA_DISABLED, errors.SNAPSHOT_INVALID,
                errors.SNAPSHOT_TOO_LARGE)
SIGNING = (
    "Signed as the Standard Webhooks specification says: `webhook-id` (unique per message; "
    "a redelivery with the same id gets the first answer and changes nothing), "
    "`webhook-timestamp` (Unix seconds, at most 5 minutes away from the server's clock) and "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, several separated by "
    "spaces) with one of the `whsec_` secrets of `CAMERA_WEBHOOK_SECRETS`. Callers must come "
    "from `INTERNAL_ALLOWED_NETWORKS`."
)


# ---------------------------------------------------------------- internal webhook


@internal.post(
    "/camera-alerts", response_model=AlertAccepted, status_code=status.HTTP_202_ACCEPTED,
    summary="Receive an alert from the operations centre's cameras",
    description=SIGNING + " The answer (202) means the alert is stored and its processing "
    "queued: pictures blurred, incident joined or opened for ward staff, staff and nearby "
    "citizens told.",
    responses=responses(*WEBHOOK_ERRORS, *ALERT_ERRORS, *BODY_ERRORS),
    openapi_extra={"requestBody": {"content": {"application/json": {"examples": {
        "accident": {"summary": "An accident with a snapshot", "value": ALERT_EXAMPLE},
    }}}}},
)
async def receive_alert(alert: CameraAlertIn, meta: Webhook, session: DbSession) -> Any:
    return await service.accept_alert(session, meta, alert)


@internal.post(
    "/camera-alerts/frigate", response_model=AlertAccepted | FrigateIgnored,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Receive a Frigate NVR `frigate/events` message (forwarded by an MQTT bridge)",
    description=SIGNING + " The Frigate camera name is the camera's code. Messages that are no "
    "alert (`end`, false positives, labels and zones mapping to no alert type) are acknowledged "
    "with `status: ignored`.",
    responses=responses(*WEBHOOK_ERRORS, *ALERT_ERRORS, *BODY_ERRORS),
)
async def receive_frigate_event(event: FrigateEvent, meta: Webhook, session: DbSession) -> Any:
    alert = frigate.to_alert(event)
    if isinstance(alert, str):
        return FrigateIgnored(reason=alert)
    return await service.accept_alert(session, meta, alert, source="frigate")


@internal.post(
    "/camera-heartbeats", response_model=HeartbeatOut,
    summary="A camera is alive",
    description=SIGNING + " Keeps a quiet camera from being flagged offline (and brings an "
    "offline one back). Send it more often than CAMERA_OFFLINE_AFTER_SECONDS.",
    responses=responses(*WEBHOOK_ERRORS, errors.CAMERA_UNKNOWN, *BODY_ERRORS),
)
async def receive_heartbeat(beat: HeartbeatIn, _: Webhook, session: DbSession) -> Any:
    camera = await service.heartbeat(session, beat.camera_id)
    return {"camera_id": camera.code, "status": camera.status,
            "last_seen_at": camera.last_seen_at}


# ---------------------------------------------------------------- registry (city admins)


@admin.post(
    "", response_model=CameraOut, status_code=status.HTTP_201_CREATED,
    summary="Register a camera",
    responses=responses(*AUTH_ERRORS, errors.CAMERA_CODE_TAKEN, WARD_NOT_FOUND, *BODY_ERRORS),
)
async def create_camera(body: CameraCreate, _: CityAdmin, session: DbSession) -> Camera:
    return await service.create_camera(session, body)


@admin.get("", response_model=CameraList, summary="List cameras",
           responses=responses(*AUTH_ERRORS))
async def list_cameras(
    _: CityAdmin, session: DbSession,
    ward_code: Annotated[str | None, Query(max_length=32)] = None,
    status_: Annotated[Literal["active", "offline", "disabled"] | None,
                       Query(alias="status")] = None,
) -> Any:
    return {"items": await service.list_cameras(session, ward_code=ward_code, status=status_)}


@admin.get("/{camera_id}", response_model=CameraOut, summary="One camera",
           responses=responses(*AUTH_ERRORS, errors.CAMERA_NOT_FOUND))
async def get_camera(camera_id: uuid.UUID, _: CityAdmin, session: DbSession) -> Camera:
    return await service.get_camera(session, camera_id)


@admin.patch(
    "/{camera_id}", response_model=CameraOut,
    summary="Change a camera (name, place, ward, direction; disable or enable it)",
    responses=responses(*AUTH_ERRORS, errors.CAMERA_NOT_FOUND, WARD_NOT_FOUND, *BODY_ERRORS),
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


@staff.get("/cameras", response_model=CameraList, summary="Cameras of my ward",
           responses=responses(*AUTH_ERRORS))
async def staff_cameras(principal: StaffPrincipal, session: DbSession) -> Any:
    return {"items": await service.list_cameras(session, ward_code=_ward_of(principal))}


@staff.get("/camera-alerts", response_model=AlertList, summary="Latest camera alerts of my ward",
           responses=responses(*AUTH_ERRORS))
async def staff_alerts(
    principal: StaffPrincipal, session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    incident_id: Annotated[str | None, Query(max_length=64,
                                             description="Only the camera evidence of this "
                                             "incident")] = None,
) -> Any:
    return {"items": await service.list_alerts(session, ward_code=_ward_of(principal),
                                               incident_id=incident_id, limit=limit)}


async def _visible_alert(session: Any, principal: Principal, alert_id: uuid.UUID) -> Any:
    alert, camera = await service.get_alert(session, alert_id)
    ward = _ward_of(principal)
    if ward is not None and camera.ward_code != ward:
        raise AppError(errors.ALERT_NOT_FOUND)  # another ward's alert: not even its existence
    return alert


@staff.get("/camera-alerts/{alert_id}", response_model=AlertOut, summary="One camera alert",
           responses=responses(*AUTH_ERRORS, errors.ALERT_NOT_FOUND))
async def staff_alert(alert_id: uuid.UUID, principal: StaffPrincipal, session: DbSession) -> Any:
    return await _visible_alert(session, principal, alert_id)


@staff.get(
    "/camera-alerts/{alert_id}/snapshot/{variant}",
    response_class=Response, summary="A picture of the alert (JPEG)",
    description="`thumbnail` (320 px) and `public` (at most 1280 px) have faces and licence "
    "plates blurred. `original` is the picture as received: reading it is written to the "
    "audit log with the reason given.",
    responses={200: {"content": {"image/jpeg": {}}},
               **responses(*AUTH_ERRORS, errors.ALERT_NOT_FOUND, errors.SNAPSHOT_NOT_AVAILABLE,
                           core_errors.VALIDATION_FAILED)},
)
async def staff_snapshot(
    alert_id: uuid.UUID, variant: Literal["thumbnail", "public", "original"],
    principal: StaffPrincipal, session: DbSession, request: Request,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    alert = await _visible_alert(session, principal, alert_id)
    if variant == "original":
        if not reason:
            raise AppError(core_errors.VALIDATION_FAILED, extra={"errors": [{
                "field": "query.reason", "code": "missing",
                "message": "a reason is required to see the unblurred picture"}]})
        await audit.record(session, audit_context(request, principal),
                           "cameras.original_snapshot_read", resource=f"camera_alert:{alert.id}",
                           reason=reason)
    picture = await service.snapshot(session, alert.id, variant)
    return Response(picture.content, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=300"})


# ---------------------------------------------------------------- device positions


@devices.put(
    "/{token}/location", response_model=DevicePositionOut,
    summary="Report this device's coarse position, for warnings about incidents nearby",
    description="Only while the citizen has traffic alerts turned on. The server keeps the grid "
    "cell (about 1 km) of the latest report, never the point and never a history.",
    responses=responses(*AUTH_ERRORS, errors.DEVICE_NOT_FOUND, errors.NOT_OPTED_IN,
                        *BODY_ERRORS),
)
async def put_location(
    token: str, body: DevicePositionIn, principal: CurrentPrincipal, session: DbSession
) -> Any:
    return await positions.report(session, principal.user.id, token, body.lat, body.lon)


@devices.delete(
    "/{token}/location", status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget this device's position", responses=responses(*AUTH_ERRORS),
)
async def delete_location(token: str, principal: CurrentPrincipal, session: DbSession) -> Response:
    await positions.forget(session, principal.user.id, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


for sub in (internal, admin, staff, devices):
    router.include_router(sub)
