"""HTTP endpoints: devices, inbox, preferences, staff announcements. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from app.admin_units.errors import WARD_NOT_FOUND
from app.core import errors as core_errors
from app.core.errors import responses
from app.identity.dependencies import CurrentPrincipal, DbSession, StaffPrincipal, audit_context
from app.notifications import announcements, errors, schemas, service

router = APIRouter()
devices = APIRouter(prefix="/api/v1/devices", tags=["notifications"])
inbox = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
prefs = APIRouter(prefix="/api/v1/notification-preferences", tags=["notifications"])
staff = APIRouter(prefix="/api/v1/staff/announcements", tags=["staff: announcements"])

AUTH = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)
BODY = (core_errors.VALIDATION_FAILED, core_errors.MALFORMED_JSON, core_errors.BODY_TOO_LARGE)


@devices.post(
    "",
    response_model=schemas.DeviceOut,
    summary="Register this app install's push token",
    description="Idempotent. A token registered under another account moves to the caller's "
    "(a phone that changed hands); logging this session out removes it.",
    responses=responses(*AUTH, *BODY),
)
async def register_device(
    body: schemas.DeviceIn, principal: CurrentPrincipal, session: DbSession
) -> Any:
    return await service.register_device(
        session,
        user_id=principal.user.id,
        auth_session_id=principal.session_id,
        token=body.token,
        platform=body.platform,
        app_version=body.app_version,
        locale=body.locale,
    )


@devices.get(
    "",
    response_model=schemas.DeviceList,
    summary="My registered devices",
    responses=responses(*AUTH),
)
async def list_devices(principal: CurrentPrincipal, session: DbSession) -> Any:
    return {"items": await service.list_devices(session, principal.user.id)}


@devices.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Stop pushes to this token",
    description="The token is in the body: a URL is written to logs along the way.",
    responses=responses(errors.DEVICE_NOT_FOUND, *AUTH, *BODY),
)
async def delete_device(
    body: schemas.DeviceTokenIn, principal: CurrentPrincipal, session: DbSession
) -> Response:
    await service.delete_device(session, principal.user.id, body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@devices.delete(
    "/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    deprecated=True,
    summary="Stop pushes to this token (deprecated path)",
    description="Deprecated: the push token in the path. Use `DELETE /api/v1/devices` with the "
    "token in the body; this path goes in the next version of the API.",
    responses=responses(errors.DEVICE_NOT_FOUND, *AUTH),
)
async def delete_device_legacy(
    token: str, principal: CurrentPrincipal, session: DbSession
) -> Response:
    await service.delete_device(session, principal.user.id, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@inbox.get(
    "",
    response_model=schemas.InboxPage,
    summary="My notifications, newest first",
    responses=responses(errors.INVALID_CURSOR, core_errors.VALIDATION_FAILED, *AUTH),
)
async def list_inbox(
    principal: CurrentPrincipal,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    unread_only: bool = False,
) -> Any:
    items, next_cursor, unread = await service.inbox(
        session, principal.user.id, cursor=cursor, limit=limit, unread_only=unread_only
    )
    return {"items": items, "next_cursor": next_cursor, "unread_count": unread}


@inbox.post(
    "/read-all",
    response_model=schemas.ReadAll,
    summary="Mark every notification read",
    responses=responses(*AUTH),
)
async def read_all(principal: CurrentPrincipal, session: DbSession) -> Any:
    marked = await service.mark_all_read(session, principal.user.id)
    return {"marked_read": marked, "unread_count": 0}


@inbox.post(
    "/{notification_id}/read",
    response_model=schemas.NotificationOut,
    summary="Mark one notification read (also counts it as opened)",
    responses=responses(errors.NOTIFICATION_NOT_FOUND, core_errors.VALIDATION_FAILED, *AUTH),
)
async def read_one(
    notification_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> Any:
    return await service.mark_read(session, principal.user.id, notification_id)


@prefs.get(
    "",
    response_model=schemas.PreferencesOut,
    summary="My notification preferences",
    responses=responses(*AUTH),
)
async def get_preferences(principal: CurrentPrincipal, session: DbSession) -> Any:
    return await service.get_preferences(session, principal.user.id)


@prefs.put(
    "",
    response_model=schemas.PreferencesOut,
    summary="Replace my notification preferences",
    description="Categories switch pushes off, never the inbox. During quiet hours "
    "(Asia/Ho_Chi_Minh) non-urgent pushes are held and sent when they end.",
    responses=responses(errors.INVALID_QUIET_HOURS, *AUTH, *BODY),
)
async def put_preferences(
    body: schemas.Preferences, principal: CurrentPrincipal, session: DbSession
) -> Any:
    quiet = (body.quiet_hours.start, body.quiet_hours.end) if body.quiet_hours else None
    return await service.set_preferences(
        session,
        principal.user.id,
        categories=body.categories.model_dump(),
        quiet_hours=quiet,
        language=body.language,
    )


ANNOUNCE_ERRORS = (
    errors.ANNOUNCEMENT_SCOPE_FORBIDDEN,
    errors.ANNOUNCEMENT_WARD_REQUIRED,
    WARD_NOT_FOUND,
    core_errors.FORBIDDEN,
    *AUTH,
    *BODY,
)


@staff.post(
    "/preview",
    response_model=schemas.AnnouncementPreview,
    summary="Preview an announcement: texts, audience size, the push as sent",
    responses=responses(*ANNOUNCE_ERRORS),
)
async def preview(
    body: schemas.AnnouncementIn, principal: StaffPrincipal, session: DbSession
) -> Any:
    return await announcements.preview(session, principal.user, body)


@staff.post(
    "",
    response_model=schemas.AnnouncementOut,
    status_code=status.HTTP_201_CREATED,
    summary="Send (or schedule) an announcement to a ward or the whole city",
    description="Ward staff and ward admins address their own ward; city admins any ward or "
    "the city.",
    responses=responses(errors.ANNOUNCEMENT_SCHEDULE_IN_PAST, *ANNOUNCE_ERRORS),
)
async def create_announcement(
    body: schemas.AnnouncementIn,
    request: Request,
    principal: StaffPrincipal,
    session: DbSession,
) -> Any:
    ann = await announcements.create(
        session, principal.user, body, audit_context(request, principal)
    )
    return await announcements.view(session, ann)


@staff.get(
    "",
    response_model=schemas.AnnouncementList,
    summary="Announcements I can see",
    responses=responses(core_errors.FORBIDDEN, *AUTH),
)
async def list_announcements(
    principal: StaffPrincipal,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Any:
    items = await announcements.list_for_staff(session, principal.user, limit)
    return {"items": await announcements.views(session, items)}


@staff.get(
    "/{announcement_id}",
    response_model=schemas.AnnouncementOut,
    summary="An announcement with its delivery report",
    responses=responses(errors.ANNOUNCEMENT_NOT_FOUND, core_errors.FORBIDDEN, *AUTH),
)
async def get_announcement(
    announcement_id: uuid.UUID, principal: StaffPrincipal, session: DbSession
) -> Any:
    ann = await announcements.get_for_staff(session, principal.user, announcement_id)
    return await announcements.view(session, ann)


@staff.post(
    "/{announcement_id}/cancel",
    response_model=schemas.AnnouncementOut,
    summary="Cancel a scheduled announcement",
    responses=responses(
        errors.ANNOUNCEMENT_NOT_FOUND,
        errors.ANNOUNCEMENT_NOT_CANCELLABLE,
        core_errors.FORBIDDEN,
        *AUTH,
    ),
)
async def cancel_announcement(
    announcement_id: uuid.UUID,
    request: Request,
    principal: StaffPrincipal,
    session: DbSession,
) -> Any:
    ann = await announcements.cancel(
        session, principal.user, announcement_id, audit_context(request, principal)
    )
    return await announcements.view(session, ann)


for part in (devices, inbox, prefs, staff):
    router.include_router(part)
