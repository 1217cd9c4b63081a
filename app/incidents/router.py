"""HTTP endpoints of traffic-incident reports. Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from app.core import errors as core_errors
from app.core.errors import responses
from app.identity.dependencies import (
    OPTIONAL_BEARER_SECURITY,
    CurrentPrincipal,
    DbSession,
    Principal,
    StaffPrincipal,
    audit_context,
    optional_principal,
)
from app.incidents import errors, feed, schemas, service, views
from app.incidents.categories import CATEGORIES
from app.media import service as media_service

router = APIRouter()
public = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
me = APIRouter(prefix="/api/v1/me/incidents", tags=["incidents"])
staff = APIRouter(prefix="/api/v1/staff/incidents", tags=["staff: incidents"])

AUTH = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)
BODY = (core_errors.VALIDATION_FAILED, core_errors.MALFORMED_JSON, core_errors.BODY_TOO_LARGE)
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]


@public.get("/categories", response_model=list[dict[str, str]], summary="What may be reported")
async def categories() -> Any:
    return [{"code": c.code, "name_vi": c.vi, "name_en": c.en} for c in CATEGORIES.values()]


@public.post(
    "",
    response_model=schemas.IncidentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Report a traffic incident",
    description="The location must be inside the service area; the ward is found from it. When a "
    "similar open report is nearby the answer is 409 `incident.possible_duplicate` with "
    '`candidates`: say "me too" to one of them, or send again with `confirm_new: true`. '
    "With an `Idempotency-Key` header, a retry returns the report the first attempt made.",
    responses=responses(
        errors.OUTSIDE_SERVICE_AREA,
        errors.POSSIBLE_DUPLICATE,
        errors.MEDIA_INVALID,
        errors.TOO_MANY_MEDIA,
        core_errors.RATE_LIMITED,
        *AUTH,
        *BODY,
    ),
)
async def report(
    body: schemas.IncidentCreate,
    principal: CurrentPrincipal,
    session: DbSession,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
) -> Any:
    incident = await service.report(
        session,
        principal.user,
        category=body.category,
        lat=body.lat,
        lon=body.lon,
        address=body.address,
        description=body.description,
        media_ids=body.media_ids,
        anonymous=body.anonymous,
        confirm_new=body.confirm_new,
        idempotency_key=idempotency_key,
    )
    return await views.detail(session, incident, "owner", principal.user)


@public.get(
    "/nearby",
    response_model=schemas.IncidentPage,
    summary="Verified incidents near a point, nearest and newest first",
    description="Only verified incidents still on the road, with their public (blurred) media; "
    "anonymous reports carry no reporter. Cursor paginated.",
    responses=responses(
        errors.RADIUS_TOO_LARGE, errors.INVALID_CURSOR, core_errors.VALIDATION_FAILED
    ),
)
async def nearby(
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    radius_m: Annotated[float, Query(gt=0)] = 2000,
    category: Annotated[schemas.CategoryCode | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    items, next_cursor = await feed.nearby(
        None,
        lat=lat,
        lon=lon,
        radius_m=radius_m,
        limit=limit,
        cursor=cursor,
        category=category,
    )
    return {"items": items, "next_cursor": next_cursor}


@public.get(
    "/{incident_id}",
    response_model=schemas.IncidentOut,
    summary="One incident",
    description="Anyone sees verified, in-progress and resolved incidents; the reporter, those who "
    "follow it and staff of its ward also see it before verification.",
    responses=responses(errors.NOT_FOUND, core_errors.TOKEN_INVALID),
    openapi_extra=OPTIONAL_BEARER_SECURITY,
)
async def get_incident(
    incident_id: uuid.UUID,
    session: DbSession,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Any:
    user = principal.user if principal else None
    incident = await service.get_visible(session, incident_id, user)
    audience = views.audience_of(incident, user)
    # Staff reading through the public endpoint get the public shape (no reporter identity).
    return await views.detail(
        session, incident, "public" if audience == "staff" else audience, user
    )


@public.post(
    "/{incident_id}/me-too",
    response_model=schemas.MeTooOut,
    summary='"Me too": count me and keep me informed',
    responses=responses(errors.NOT_FOUND, errors.NOT_OPEN, *AUTH),
)
async def me_too(incident_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession) -> Any:
    incident = await service.me_too(session, principal.user, incident_id)
    return {"incident_id": incident.id, "me_too_count": incident.me_too_count, "subscribed": True}


@public.delete(
    "/{incident_id}/subscription",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop following an incident",
    responses=responses(*AUTH),
)
async def unsubscribe(
    incident_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> Response:
    await service.unsubscribe(session, principal.user, incident_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.get(
    "",
    response_model=schemas.MyIncidentPage,
    summary="Incidents I reported or follow",
    responses=responses(errors.INVALID_CURSOR, *AUTH),
)
async def my_incidents(
    principal: CurrentPrincipal,
    session: DbSession,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    incidents, next_cursor = await service.mine(session, principal.user, limit=limit, cursor=cursor)
    me_id = principal.user.id
    # Followers of someone else's report see it as the public does (blurred media only).
    items = await views.summaries(
        session,
        incidents,
        lambda i: "owner" if i.reporter_id == me_id else "public",
        principal.user,
    )
    for item, incident in zip(items, incidents, strict=True):
        item["relation"] = "reporter" if incident.reporter_id == me_id else "subscriber"
    return {"items": items, "next_cursor": next_cursor}


@staff.get(
    "",
    response_model=schemas.StaffIncidentPage,
    summary="The ward's incidents, newest first",
    description="Ward staff see their ward's incidents; city admins every ward's and the "
    "province queue (locations no ward centre is near).",
    responses=responses(errors.INVALID_CURSOR, core_errors.FORBIDDEN, *AUTH),
)
async def staff_list(
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
    status_: Annotated[schemas.Status | None, Query(alias="status")] = None,
    category: Annotated[schemas.CategoryCode | None, Query()] = None,
    ward_code: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    incidents, next_cursor = await service.staff_list(
        session,
        principal.user,
        status=status_,
        category=category,
        ward_code=ward_code,
        limit=limit,
        cursor=cursor,
    )
    await service.staff_view_audit(
        session, incidents, audit_context(request, principal), "incident.staff_list"
    )
    return {
        "items": await views.summaries(session, incidents, "staff", principal.user),
        "next_cursor": next_cursor,
    }


@staff.get(
    "/{incident_id}",
    response_model=schemas.StaffIncidentOut,
    summary="One incident of the ward, with its reporter (audited)",
    responses=responses(errors.NOT_FOUND, core_errors.FORBIDDEN, *AUTH),
)
async def staff_get(
    incident_id: uuid.UUID,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    incident = await service.get_for_staff(session, principal.user, incident_id)
    await service.staff_view_audit(
        session, [incident], audit_context(request, principal), "incident.staff_read"
    )
    return await views.detail(session, incident, "staff", principal.user)


@staff.post(
    "/{incident_id}/transitions",
    response_model=schemas.StaffIncidentOut,
    summary="Verify, reject as spam or duplicate, start, resolve, or add a public note",
    description="Allowed: new → verify | reject_spam | reject_duplicate; verified → start | "
    "resolve | reject_duplicate; in_progress → resolve; `note` in any state. Each change is "
    "on the timeline and sends `incident.status_changed` to the reporter and followers.",
    responses=responses(
        errors.NOT_FOUND,
        errors.INVALID_TRANSITION,
        errors.DUPLICATE_TARGET_INVALID,
        core_errors.FORBIDDEN,
        *AUTH,
        *BODY,
    ),
)
async def transition(
    incident_id: uuid.UUID,
    body: schemas.TransitionIn,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    incident = await service.transition(
        session,
        principal.user,
        incident_id,
        body.action,
        body.note,
        body.duplicate_of,
        audit_context(request, principal),
    )
    return await views.detail(session, incident, "staff", principal.user)


@staff.post(
    "/{incident_id}/media/{media_id}",
    response_model=schemas.StaffIncidentOut,
    summary="Hide, show again, or redact a photo or video",
    description="`hide` keeps it from the public (reversible with `show`); `redact` deletes its "
    "public versions for good (the original stays for staff). On the timeline and audited.",
    responses=responses(
        errors.NOT_FOUND,
        errors.MEDIA_NOT_FOUND,
        errors.INVALID_MEDIA_ACTION,
        core_errors.FORBIDDEN,
        *AUTH,
        *BODY,
    ),
)
async def moderate_media(
    incident_id: uuid.UUID,
    media_id: uuid.UUID,
    body: schemas.MediaModerationIn,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    incident = await service.moderate_media(
        session,
        principal.user,
        incident_id,
        media_id,
        body.action,
        body.note,
        audit_context(request, principal),
    )
    return await views.detail(session, incident, "staff", principal.user)


@staff.get(
    "/{incident_id}/media/{media_id}/original",
    response_class=StreamingResponse,
    summary="The unblurred original of a photo or video (audited, with a reason)",
    description="Faces and licence plates as received. Staff views of incidents link only to "
    "blurred versions; the original is read here, and each read is written to the audit log "
    "with the `reason` given.",
    responses={
        200: {"content": {"image/jpeg": {}, "video/mp4": {}}},
        **responses(
            errors.NOT_FOUND,
            errors.MEDIA_NOT_FOUND,
            core_errors.VALIDATION_FAILED,
            core_errors.FORBIDDEN,
            *AUTH,
        ),
    },
)
async def staff_media_original(
    incident_id: uuid.UUID,
    media_id: uuid.UUID,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> StreamingResponse:
    media = await service.original_for_staff(
        session, principal.user, incident_id, media_id, reason, audit_context(request, principal)
    )
    return StreamingResponse(
        media_service.content(media),
        media_type=media.content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Length": str(media.size_bytes),
        },
    )


router.include_router(public)
router.include_router(me)
router.include_router(staff)
