"""The signed internal webhooks of the cameras domain: alerts from the operations centre (our own
body and Frigate NVR's events) and camera heartbeats, under `/internal/v1`.

A router of their own, with its own route class (`SignedWebhookRoute`: the signature checked over
the raw body, the body parsed once). The alert route is one of app.main.HOT_ROUTES, tried before
every other route: matched at the end of the list, an alert cost more CPU in routing than in its
own handling.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import TypeAdapter

from app.cameras import errors, frigate, intake, service
from app.cameras.schemas import (
    ALERT_EXAMPLE,
    AlertAccepted,
    CameraAlertIn,
    FrigateEvent,
    FrigateIgnored,
    HeartbeatIn,
    HeartbeatOut,
)
from app.cameras.webhooks import SignedWebhookRoute, WebhookMeta, direct, webhook_meta
from app.core import errors as core_errors
from app.core.errors import responses
from app.core.internal import INTERNAL_NETWORK_FORBIDDEN
from app.identity.dependencies import DbSession

router = APIRouter(
    prefix="/internal/v1", tags=["internal: camera alerts"], route_class=SignedWebhookRoute
)

Webhook = Annotated[WebhookMeta, Depends(webhook_meta)]
BODY_ERRORS = (
    core_errors.VALIDATION_FAILED,
    core_errors.MALFORMED_JSON,
    core_errors.BODY_TOO_LARGE,
)
WEBHOOK_ERRORS = (
    errors.WEBHOOK_UNSIGNED,
    errors.WEBHOOK_BAD_SIGNATURE,
    errors.WEBHOOK_TIMESTAMP,
    errors.WEBHOOK_NOT_CONFIGURED,
    INTERNAL_NETWORK_FORBIDDEN,
)
ALERT_ERRORS = (
    errors.CAMERA_UNKNOWN,
    errors.CAMERA_DISABLED,
    errors.SNAPSHOT_INVALID,
    errors.SNAPSHOT_TOO_LARGE,
)
SIGNING = (
    "Signed as the Standard Webhooks specification says: `webhook-id` (unique per message; "
    "a redelivery with the same id gets the first answer and changes nothing), "
    "`webhook-timestamp` (Unix seconds, at most 5 minutes away from the server's clock) and "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, several separated by "
    "spaces) with one of the `whsec_` secrets of `CAMERA_WEBHOOK_SECRETS`. Callers must come "
    "from `INTERNAL_ALLOWED_NETWORKS`."
)

# The acknowledgement rendered as FastAPI renders a `response_model` (pydantic, compact JSON).
_ACCEPTED = TypeAdapter(AlertAccepted)


@router.post(
    "/camera-alerts",
    response_model=AlertAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Receive an alert from the operations centre's cameras",
    description=SIGNING + " The answer (202) means the alert is stored and its processing "
    "queued: pictures blurred, incident joined or opened for ward staff, staff and nearby "
    "citizens told.",
    responses=responses(*WEBHOOK_ERRORS, *ALERT_ERRORS, *BODY_ERRORS),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "examples": {
                        "accident": {
                            "summary": "An accident with a snapshot",
                            "value": ALERT_EXAMPLE,
                        },
                    }
                }
            }
        }
    },
)
@direct(CameraAlertIn)
async def receive_alert(alert: CameraAlertIn, meta: Webhook, session: DbSession) -> Response:
    answer = await intake.accept_alert(session, meta, alert)
    return Response(
        _ACCEPTED.dump_json(_ACCEPTED.validate_python(answer)),
        status_code=status.HTTP_202_ACCEPTED,
        media_type="application/json",
    )


@router.post(
    "/camera-alerts/frigate",
    response_model=AlertAccepted | FrigateIgnored,
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
    return await intake.accept_alert(session, meta, alert, source="frigate")


@router.post(
    "/camera-heartbeats",
    response_model=HeartbeatOut,
    summary="A camera is alive",
    description=SIGNING + " Keeps a quiet camera from being flagged offline (and brings an "
    "offline one back). Send it more often than CAMERA_OFFLINE_AFTER_SECONDS.",
    responses=responses(*WEBHOOK_ERRORS, errors.CAMERA_UNKNOWN, *BODY_ERRORS),
)
async def receive_heartbeat(beat: HeartbeatIn, _: Webhook, session: DbSession) -> Any:
    camera = await service.heartbeat(session, beat.camera_id)
    return {"camera_id": camera.code, "status": camera.status, "last_seen_at": camera.last_seen_at}
