"""Rules of traffic-incident reports: where they may be filed, twins, the public feed, moderation.

Other domains call `report`, `join_or_open_from_camera`, `recipients` and `get_public`; the tables
stay private to this package.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import audit, clock, deep_links, jobs, ratelimit
from app.core import errors as core_errors
from app.core.audit import AuditContext
from app.core.errors import AppError
from app.core.personal_data import Retained
from app.core.tables import rows_matched
from app.identity.roles import Role
from app.identity.service import Account
from app.incidents import errors, geo, renditions
from app.incidents.categories import CATEGORIES
from app.incidents.config import get_incident_settings
from app.incidents.models import (
    Incident,
    IncidentEvent,
    IncidentMedia,
    IncidentSubscription,
)
from app.incidents.wards import resolve_ward
from app.media import formats
from app.media import public as media_public
from app.media import service as media_service

OPEN = ("new", "verified", "in_progress")
# Anyone may read these by id; the nearby feed shows only the ones still on the road.
PUBLIC = ("verified", "in_progress", "resolved")
FEED = ("verified", "in_progress")

# The one table of what staff may do: (status, action) -> new status.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("new", "verify"): "verified",
    ("new", "reject_spam"): "rejected_spam",
    ("new", "reject_duplicate"): "rejected_duplicate",
    ("verified", "start"): "in_progress",
    ("verified", "resolve"): "resolved",
    ("verified", "reject_duplicate"): "rejected_duplicate",
    ("in_progress", "resolve"): "resolved",
}
STATUS_CHANGED = "incident.status_changed"


# ---------------------------------------------------------------- helpers


def mask_name(full_name: str | None) -> str | None:
    """ "Nguyễn Văn An" -> "Nguyễn Văn A.": recognisable to neighbours, not a full identity."""
    if not full_name or not full_name.strip():
        return None
    words = full_name.split()
    return " ".join([*words[:-1], words[-1][0] + "."])


def within_service_area(lat: float, lon: float) -> bool:
    """Inside the area the city's staff serve (INCIDENT_SERVICE_AREA)."""
    return geo.point_in_polygon(lon, lat, get_incident_settings().incident_service_area)


def _check_location(lat: float, lon: float) -> None:
    if not within_service_area(lat, lon):
        raise AppError(errors.OUTSIDE_SERVICE_AREA, extra={"lat": lat, "lon": lon})


def _check_category(category: str) -> None:
    if category not in CATEGORIES:
        raise AppError(errors.UNKNOWN_CATEGORY, extra={"accepted": sorted(CATEGORIES)})


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or set(data) != set(keys):
            raise ValueError(cursor)
        data["t"] = datetime.fromisoformat(data["t"])
        data["i"] = uuid.UUID(data["i"])
        return data
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise AppError(errors.INVALID_CURSOR) from None


def _after(created: Any, ident: Any, cursor: dict[str, Any]) -> Any:
    """Keyset condition for "newest first": strictly after the cursor's row."""
    return sa.or_(created < cursor["t"], sa.and_(created == cursor["t"], ident < cursor["i"]))


async def _record(
    session: AsyncSession,
    incident: Incident,
    action: str,
    *,
    actor_id: uuid.UUID | None,
    from_status: str | None,
    to_status: str | None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> IncidentEvent:
    event = IncidentEvent(
        incident_id=incident.id,
        actor_id=actor_id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        public_note=note,
        details=details or {},
    )
    session.add(event)
    await session.flush()
    return event


async def recipients(session: AsyncSession, incident_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone who follows the incident (its reporter and "me too"s)."""
    rows = await session.execute(
        sa.select(col(IncidentSubscription.user_id))
        .where(col(IncidentSubscription.incident_id) == incident_id)
        .order_by(col(IncidentSubscription.created_at))
    )
    return list(rows.scalars())


async def _emit(
    session: AsyncSession,
    incident: Incident,
    event: IncidentEvent,
    actor_id: uuid.UUID | None,
) -> None:
    """One `incident.status_changed` job per change, in the change's own transaction."""
    followers = [u for u in await recipients(session, incident.id) if u != actor_id]
    await jobs.enqueue(
        session,
        STATUS_CHANGED,
        {
            "incident_id": str(incident.id),
            "event_id": str(event.id),
            "action": event.action,
            "from_status": event.from_status,
            "to_status": event.to_status,
            "status": incident.status,
            "category": incident.category,
            "ward_code": incident.ward_code,
            "public_note": event.public_note,
            "recipient_ids": [str(u) for u in followers],
            "deep_link": deep_links.incident(incident.id),
            "at": clock.as_utc(event.at).isoformat(),
        },
        dedupe_key=f"{STATUS_CHANGED}:{event.id}",
    )


async def _subscribe(
    session: AsyncSession, incident_id: uuid.UUID, user_id: uuid.UUID, via: str
) -> bool:
    """True when the user was not yet following."""
    existing = await session.get(IncidentSubscription, (incident_id, user_id))
    if existing is not None:
        return False
    session.add(IncidentSubscription(incident_id=incident_id, user_id=user_id, via=via))
    await session.flush()
    return True


# ---------------------------------------------------------------- duplicates


@dataclass(frozen=True)
class Found:
    incident: Incident
    distance_m: float


async def find_duplicates(
    session: AsyncSession, category: str, lat: float, lon: float, at: datetime
) -> list[Found]:
    """Open reports of the same category within the configured distance and time, nearest first."""
    settings = get_incident_settings()
    radius = settings.incident_duplicate_radius_m
    window = settings.incident_duplicate_window_minutes_by_category.get(
        category, settings.incident_duplicate_window_minutes
    )
    box = geo.bounding_box(lat, lon, radius)
    query = sa.select(Incident).where(
        col(Incident.category) == category,
        col(Incident.status).in_(OPEN),
        col(Incident.lat).between(box[0], box[1]),
        col(Incident.lon).between(box[2], box[3]),
        col(Incident.last_reported_at) >= at - timedelta(minutes=window),
    )
    cells = geo.cells_covering(box, settings.incident_grid_degrees)
    if cells is not None:
        query = query.where(col(Incident.cell).in_(cells))
    found = [
        Found(i, geo.haversine_m(lat, lon, i.lat, i.lon))
        for i in (await session.execute(query.limit(50))).scalars()
    ]
    return sorted((f for f in found if f.distance_m <= radius), key=lambda f: f.distance_m)


def _candidates(found: list[Found]) -> list[dict[str, Any]]:
    return [
        {
            "id": str(f.incident.id),
            "category": f.incident.category,
            "status": f.incident.status,
            "distance_m": round(f.distance_m, 1),
            "address": f.incident.address,
            "me_too_count": f.incident.me_too_count,
            "created_at": f.incident.created_at.isoformat(),
        }
        for f in found[:5]
    ]


# ---------------------------------------------------------------- filing


async def _open(
    session: AsyncSession,
    *,
    category: str,
    lat: float,
    lon: float,
    source: str,
    address: str | None = None,
    description: str | None = None,
    reporter: Account | None = None,
    anonymous: bool = True,
    occurred_at: datetime | None = None,
    camera_id: str | None = None,
    confidence: float | None = None,
    idempotency_key: str | None = None,
) -> Incident:
    settings = get_incident_settings()
    now = clock.now()
    incident = Incident(
        category=category,
        status="new",
        lat=lat,
        lon=lon,
        cell=geo.cell_of(lat, lon, settings.incident_grid_degrees),
        address=address,
        description=description,
        ward_code=resolve_ward(lat, lon, settings.incident_ward_max_distance_m),
        reporter_id=reporter.id if reporter else None,
        reporter_display_name=mask_name(reporter.full_name) if reporter else None,
        anonymous=anonymous,
        source=source,
        camera_id=camera_id,
        confidence=confidence,
        idempotency_key=idempotency_key,
        occurred_at=occurred_at or now,
        created_at=now,
        updated_at=now,
        last_reported_at=now,
    )
    session.add(incident)
    await session.flush()
    if reporter is not None:
        await _subscribe(session, incident.id, reporter.id, "reporter")
    return incident


async def _replayed(
    session: AsyncSession, reporter: Account, idempotency_key: str | None
) -> Incident | None:
    if not idempotency_key:
        return None
    return (
        await session.execute(
            sa.select(Incident).where(
                col(Incident.reporter_id) == reporter.id,
                col(Incident.idempotency_key) == idempotency_key,
            )
        )
    ).scalar_one_or_none()


async def report(
    session: AsyncSession,
    reporter: Account,
    *,
    category: str,
    lat: float,
    lon: float,
    address: str | None,
    description: str | None,
    media_ids: list[uuid.UUID],
    anonymous: bool,
    confirm_new: bool,
    source: str = "citizen",
    idempotency_key: str | None = None,
) -> Incident:
    """A citizen's report; 409 `incident.possible_duplicate` offers a nearby open twin instead.
    A retry with the same Idempotency-Key returns the report the first attempt made."""
    settings = get_incident_settings()
    if (earlier := await _replayed(session, reporter, idempotency_key)) is not None:
        return earlier
    _check_category(category)
    _check_location(lat, lon)
    if len(media_ids) > settings.incident_max_media:
        raise AppError(errors.TOO_MANY_MEDIA, params={"limit": settings.incident_max_media})
    await ratelimit.hit(
        session,
        f"incident.report:{reporter.id}",
        limit=settings.incident_reports_per_hour,
        window_seconds=3600,
    )
    if not confirm_new:
        twins = await find_duplicates(session, category, lat, lon, clock.now())
        if twins:
            raise AppError(
                errors.POSSIBLE_DUPLICATE, extra={"candidates": _candidates(twins)}, commit=True
            )
    media = await _owned_media(session, media_ids, reporter.id)
    try:
        async with session.begin_nested():
            incident = await _open(
                session,
                category=category,
                lat=lat,
                lon=lon,
                source=source,
                address=address,
                description=description,
                reporter=reporter,
                anonymous=anonymous,
                idempotency_key=idempotency_key,
            )
    except sa.exc.IntegrityError:
        # The same key raced in from a parallel retry: that one won.
        earlier = await _replayed(session, reporter, idempotency_key)
        if earlier is None:
            raise
        return earlier
    await _attach_media(session, incident, media, added_by=reporter.id)
    event = await _record(
        session, incident, "reported", actor_id=reporter.id, from_status=None, to_status="new"
    )
    await _emit(session, incident, event, reporter.id)
    return incident


async def report_for_partner(
    session: AsyncSession,
    partner: str,
    *,
    category: str,
    lat: float,
    lon: float,
    address: str | None,
    description: str | None,
) -> tuple[Incident, bool]:
    """A report from an Open311 partner tool (no citizen account): joins an open twin nearby
    (counted once per report) or opens a new one. Returns (incident, joined)."""
    settings = get_incident_settings()
    _check_category(category)
    _check_location(lat, lon)
    await ratelimit.hit(
        session,
        f"incident.open311:{partner}",
        limit=settings.incident_open311_reports_per_hour,
        window_seconds=3600,
    )
    details = {"partner": partner}
    twins = await find_duplicates(session, category, lat, lon, clock.now())
    if twins:
        incident = twins[0].incident
        await session.execute(
            sa.update(Incident)
            .where(col(Incident.id) == incident.id)
            .values(
                me_too_count=Incident.me_too_count + 1,
                last_reported_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await session.refresh(incident)
        await _record(
            session,
            incident,
            "open311_report",
            actor_id=None,
            from_status=incident.status,
            to_status=incident.status,
            details=details,
        )
        return incident, True
    incident = await _open(
        session,
        category=category,
        lat=lat,
        lon=lon,
        source="open311",
        address=address,
        description=description,
    )
    event = await _record(
        session,
        incident,
        "reported",
        actor_id=None,
        from_status=None,
        to_status="new",
        details=details,
    )
    await _emit(session, incident, event, None)
    return incident, False


async def search_public(
    session: AsyncSession,
    *,
    ids: list[uuid.UUID] | None,
    categories: list[str] | None,
    statuses: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Incident]:
    """Open311 GET requests: by id (any status; the caller shows less of unverified ones), or
    public incidents filtered by category, status and time, newest first."""
    query = sa.select(Incident)
    if ids is not None:
        query = query.where(col(Incident.id).in_(ids))
    else:
        query = query.where(col(Incident.status).in_(statuses or PUBLIC))
    if categories:
        query = query.where(col(Incident.category).in_(categories))
    if start is not None:
        query = query.where(col(Incident.created_at) >= start)
    if end is not None:
        query = query.where(col(Incident.created_at) <= end)
    query = query.order_by(col(Incident.created_at).desc(), col(Incident.id).desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def latest_notes(
    session: AsyncSession, incident_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The last public note of each incident (Open311 `status_notes`)."""
    if not incident_ids:
        return {}
    rows = await session.execute(
        sa.select(col(IncidentEvent.incident_id), col(IncidentEvent.public_note))
        .where(
            col(IncidentEvent.incident_id).in_(incident_ids),
            col(IncidentEvent.public_note).is_not(None),
        )
        .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
    )
    return {incident_id: note for incident_id, note in rows.all() if note is not None}


async def me_too(session: AsyncSession, user: Account, incident_id: uuid.UUID) -> Incident:
    """Count the caller once and subscribe them; their own report does not count."""
    # Any open report may be joined by id: that is how a twin offered in a 409 is joined
    # before staff have verified it.
    incident = await session.get(Incident, incident_id)
    if incident is None or (incident.status not in PUBLIC and incident.status not in OPEN):
        raise AppError(errors.NOT_FOUND)
    if incident.status not in OPEN:
        raise AppError(errors.NOT_OPEN)
    if await _subscribe(session, incident.id, user.id, "me_too"):
        # An atomic increment: concurrent "me too"s must all count.
        await session.execute(
            sa.update(Incident)
            .where(col(Incident.id) == incident.id)
            .values(
                me_too_count=Incident.me_too_count + 1,
                last_reported_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await session.refresh(incident)
    return incident


async def unsubscribe(session: AsyncSession, user: Account, incident_id: uuid.UUID) -> None:
    await session.execute(
        sa.delete(IncidentSubscription).where(
            col(IncidentSubscription.incident_id) == incident_id,
            col(IncidentSubscription.user_id) == user.id,
        )
    )


def combined_confidence(current: float | None, new: float) -> float:
    """Independent sightings add up: the chance that all of them are wrong shrinks with each."""
    if current is None:
        return new
    return round(1 - (1 - current) * (1 - new), 4)


async def join_or_open_from_camera(
    session: AsyncSession,
    *,
    category: str,
    lat: float,
    lon: float,
    occurred_at: datetime,
    confidence: float,
    evidence_media_id: uuid.UUID | None,
    camera_id: str,
) -> tuple[uuid.UUID, bool]:
    """A traffic camera saw something: add it to an open twin, or open a new report for staff to
    verify. Returns (incident id, joined an existing one)."""
    _check_category(category)
    _check_location(lat, lon)
    details = {
        "camera_id": camera_id,
        "confidence": confidence,
        "occurred_at": clock.as_utc(occurred_at).isoformat(),
    }
    media = await _media_by_ids(session, [evidence_media_id] if evidence_media_id else [])
    twins = await find_duplicates(session, category, lat, lon, clock.as_utc(occurred_at))
    if twins:
        incident = twins[0].incident
        incident.confidence = combined_confidence(incident.confidence, confidence)
        incident.last_reported_at = max(incident.last_reported_at, clock.as_utc(occurred_at))
        incident.updated_at = clock.now()
        await _attach_media(session, incident, media, added_by=None)
        await _record(
            session,
            incident,
            "camera_alert",
            actor_id=None,
            from_status=incident.status,
            to_status=incident.status,
            details=details,
        )
        return incident.id, True
    incident = await _open(
        session,
        category=category,
        lat=lat,
        lon=lon,
        source="camera",
        occurred_at=clock.as_utc(occurred_at),
        camera_id=camera_id,
        confidence=confidence,
    )
    await _attach_media(session, incident, media, added_by=None)
    event = await _record(
        session,
        incident,
        "reported",
        actor_id=None,
        from_status=None,
        to_status="new",
        details=details,
    )
    await _emit(session, incident, event, None)
    return incident.id, False


# ---------------------------------------------------------------- who sees what


def staff_scope(staff: Account) -> Any:
    """City admins see every incident; ward staff those of their ward (none without a ward)."""
    if staff.role == Role.CITY_ADMIN:
        return sa.true()
    if staff.ward_code is None:
        return sa.false()
    return Incident.ward_code == staff.ward_code


def can_manage(staff: Account, incident: Incident) -> bool:
    if staff.role == Role.CITY_ADMIN:
        return True
    return (
        staff.role in (Role.WARD_STAFF, Role.WARD_ADMIN)
        and staff.ward_code is not None
        and incident.ward_code == staff.ward_code
    )


async def _may_see(session: AsyncSession, incident: Incident, user: Account | None) -> bool:
    if incident.status in PUBLIC:
        return True
    if user is None:
        return False
    if incident.reporter_id == user.id or can_manage(user, incident):
        return True
    # Those who said "me too" to a report before it was verified follow it.
    return await session.get(IncidentSubscription, (incident.id, user.id)) is not None


async def get_visible(
    session: AsyncSession, incident_id: uuid.UUID, user: Account | None
) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None or not await _may_see(session, incident, user):
        raise AppError(errors.NOT_FOUND)
    return incident


async def get_for_staff(session: AsyncSession, staff: Account, incident_id: uuid.UUID) -> Incident:
    """404 (not 403) outside the staff member's ward: existence is not leaked."""
    incident = await session.get(Incident, incident_id)
    if incident is None or not can_manage(staff, incident):
        raise AppError(errors.NOT_FOUND)
    return incident


async def public_timeline(session: AsyncSession, incident_id: uuid.UUID) -> list[IncidentEvent]:
    rows = await session.execute(
        sa.select(IncidentEvent)
        .where(col(IncidentEvent.incident_id) == incident_id)
        .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
    )
    return list(rows.scalars())


async def staff_view_audit(
    session: AsyncSession, incidents: list[Incident], ctx: AuditContext, action: str
) -> None:
    """Every staff read of incidents is audited, one entry per incident, whether a citizen
    reported it (staff then see who, even of anonymous reports) or a camera did (its pictures
    may show people)."""
    for incident in incidents:
        await audit.record(
            session,
            ctx,
            action,
            subject_id=incident.reporter_id,
            resource=f"incident:{incident.id}",
        )


async def original_for_staff(
    session: AsyncSession,
    staff: Account,
    incident_id: uuid.UUID,
    media_id: uuid.UUID,
    reason: str | None,
    ctx: AuditContext,
) -> media_service.Media:
    """The unblurred original of a file of the incident, for staff of its ward, with the reason
    written to the audit log. The only way staff reach an original."""
    incident = await get_for_staff(session, staff, incident_id)
    if not reason or not reason.strip():
        raise AppError(
            core_errors.VALIDATION_FAILED,
            extra={
                "errors": [
                    {
                        "field": "query.reason",
                        "code": "missing",
                        "message": "a reason is required to see the unblurred original",
                    }
                ]
            },
        )
    link = await session.get(IncidentMedia, (incident_id, media_id))
    media = await media_service.get(session, media_id) if link is not None else None
    if media is None or not media.storage_key:  # a camera original past its retention
        raise AppError(errors.MEDIA_NOT_FOUND)
    await audit.record(
        session,
        ctx,
        "incident.media_original_read",
        subject_id=incident.reporter_id,
        resource=f"incident:{incident.id}",
        reason=reason.strip(),
        details={
            "media_id": str(media_id),
            "uploader_id": str(media.owner_id) if media.owner_id else None,
        },
    )
    return media


# ---------------------------------------------------------------- lists


def _page(rows: list[Incident], limit: int) -> tuple[list[Incident], str | None]:
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor({"t": last.created_at.isoformat(), "i": str(last.id)})


async def staff_list(
    session: AsyncSession,
    staff: Account,
    *,
    status: str | None,
    category: str | None,
    ward_code: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Incident], str | None]:
    query = sa.select(Incident).where(staff_scope(staff))
    if status is not None:
        query = query.where(col(Incident.status) == status)
    if category is not None:
        query = query.where(col(Incident.category) == category)
    if ward_code is not None:
        query = query.where(col(Incident.ward_code) == ward_code)
    if cursor:
        query = query.where(
            _after(Incident.created_at, Incident.id, decode_cursor(cursor, ("t", "i")))
        )
    query = query.order_by(col(Incident.created_at).desc(), col(Incident.id).desc()).limit(
        limit + 1
    )
    return _page(list((await session.execute(query)).scalars()), limit)


async def mine(
    session: AsyncSession, user: Account, *, limit: int, cursor: str | None
) -> tuple[list[Incident], str | None]:
    """What the citizen reported or follows, newest first."""
    followed = sa.select(col(IncidentSubscription.incident_id)).where(
        col(IncidentSubscription.user_id) == user.id
    )
    query = sa.select(Incident).where(
        sa.or_(col(Incident.reporter_id) == user.id, col(Incident.id).in_(followed))
    )
    if cursor:
        query = query.where(
            _after(Incident.created_at, Incident.id, decode_cursor(cursor, ("t", "i")))
        )
    query = query.order_by(col(Incident.created_at).desc(), col(Incident.id).desc()).limit(
        limit + 1
    )
    return _page(list((await session.execute(query)).scalars()), limit)


# ---------------------------------------------------------------- staff actions


async def transition(
    session: AsyncSession,
    staff: Account,
    incident_id: uuid.UUID,
    action: str,
    note: str | None,
    duplicate_of: uuid.UUID | None,
    ctx: AuditContext,
) -> Incident:
    incident = await get_for_staff(session, staff, incident_id)
    before = incident.status
    if action == "note":
        if not note:
            raise AppError(errors.INVALID_TRANSITION, params={"action": action, "status": before})
        after = before
    else:
        target = TRANSITIONS.get((before, action))
        if target is None:
            raise AppError(
                errors.INVALID_TRANSITION,
                params={"action": action, "status": before},
                extra={"allowed": allowed_actions(before)},
            )
        after = target
    details: dict[str, Any] = {}
    if action == "reject_duplicate":
        original = await _duplicate_target(session, staff, incident, duplicate_of)
        incident.duplicate_of_id = original.id
        details["duplicate_of"] = str(original.id)
        await _fold_into(session, incident, original)
    now = clock.now()
    incident.status, incident.updated_at = after, now
    if after == "verified":
        incident.verified_at = now
    if after == "resolved":
        incident.resolved_at = now
    session.add(incident)
    event = await _record(
        session,
        incident,
        action,
        actor_id=staff.id,
        from_status=before,
        to_status=after,
        note=note,
        details=details,
    )
    await audit.record(
        session,
        ctx,
        f"incident.{action}",
        subject_id=incident.reporter_id,
        resource=f"incident:{incident.id}",
        details={"from": before, "to": after, **details},
    )
    await _emit(session, incident, event, staff.id)
    return incident


def allowed_actions(status: str) -> list[str]:
    return [action for (state, action) in TRANSITIONS if state == status] + ["note"]


async def _duplicate_target(
    session: AsyncSession, staff: Account, incident: Incident, duplicate_of: uuid.UUID | None
) -> Incident:
    original = await session.get(Incident, duplicate_of) if duplicate_of else None
    if (
        original is None
        or original.id == incident.id
        or not can_manage(staff, original)
        or original.status not in (*OPEN, "resolved")
    ):
        raise AppError(errors.DUPLICATE_TARGET_INVALID)
    return original


async def _fold_into(session: AsyncSession, twin: Incident, original: Incident) -> None:
    """The twin's followers follow the original; its reporter counts as a "me too" there."""
    new_followers = 0
    for user_id in await recipients(session, twin.id):
        if await _subscribe(session, original.id, user_id, "duplicate"):
            new_followers += 1
    original.me_too_count += new_followers
    original.updated_at = clock.now()
    session.add(original)


# ---------------------------------------------------------------- media


async def _owned_media(
    session: AsyncSession, media_ids: list[uuid.UUID], owner_id: uuid.UUID
) -> list[media_service.Media]:
    """The caller's own photos/videos, each not yet part of another report, in the given order."""
    wanted = list(dict.fromkeys(media_ids))
    if not wanted:
        return []
    owned = await media_service.get_owned(session, wanted, owner_id)
    taken = set(
        (
            await session.execute(
                sa.select(col(IncidentMedia.media_id)).where(
                    col(IncidentMedia.media_id).in_(wanted)
                )
            )
        ).scalars()
    )
    invalid = [
        str(i)
        for i in wanted
        if i not in owned or i in taken or formats.kind_of(owned[i].content_type) is None
    ]
    if invalid:
        raise AppError(errors.MEDIA_INVALID, extra={"media_ids": invalid})
    return [owned[i] for i in wanted]


async def _media_by_ids(
    session: AsyncSession, media_ids: list[uuid.UUID]
) -> list[media_service.Media]:
    found = [await media_service.get(session, i) for i in media_ids]
    return [m for m in found if m is not None and formats.kind_of(m.content_type) is not None]


async def _attach_media(
    session: AsyncSession,
    incident: Incident,
    media: list[media_service.Media],
    added_by: uuid.UUID | None,
) -> None:
    if not media:
        return
    # Attached: never purged as an orphan. One purged meanwhile (past its retention) is gone.
    present = await media_service.mark_attached(session, [m.id for m in media])
    if missing := [str(m.id) for m in media if m.id not in present]:
        raise AppError(errors.MEDIA_INVALID, extra={"media_ids": missing})
    existing = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(IncidentMedia)
            .where(col(IncidentMedia.incident_id) == incident.id)
        )
    ).scalar_one()
    taken = set(
        (
            await session.execute(
                sa.select(col(IncidentMedia.media_id)).where(
                    col(IncidentMedia.media_id).in_([m.id for m in media])
                )
            )
        ).scalars()
    )
    for position, item in enumerate((m for m in media if m.id not in taken), start=existing):
        session.add(
            IncidentMedia(
                incident_id=incident.id, media_id=item.id, position=position, added_by_id=added_by
            )
        )
    await session.flush()
    # Blurred public versions, thumbnails and the probe are made by the worker.
    await media_public.request_processing(session, media)


def _item(link: IncidentMedia, found: media_public.Described | None) -> renditions.Item:
    if found is None:
        return renditions.Item(link.media_id, link.visibility, None, None, None, present=False)
    state = found.processing
    return renditions.Item(
        link.media_id,
        link.visibility,
        found.media.owner_id,
        found.kind,
        state.status if state is not None else None,
        error_code=state.error_code if state is not None else None,
        width=state.width if state is not None else None,
        height=state.height if state is not None else None,
        duration_s=state.duration_s if state is not None else None,
        versions=frozenset(found.variants),
    )


async def media_views_by_incident(
    session: AsyncSession, incident_ids: list[uuid.UUID], viewer: renditions.Viewer
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each incident's files as `viewer` may see them (`renditions.render`)."""
    if not incident_ids:
        return {}
    links = list(
        (
            await session.execute(
                sa.select(IncidentMedia)
                .where(col(IncidentMedia.incident_id).in_(incident_ids))
                .order_by(col(IncidentMedia.incident_id), col(IncidentMedia.position))
            )
        ).scalars()
    )
    described = await media_public.describe(session, [link.media_id for link in links])
    sign = media_public.url_signer()
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for link in links:
        view = renditions.render(_item(link, described.get(link.media_id)), viewer, sign)
        if view is not None:
            out.setdefault(link.incident_id, []).append(view)
    return out


MODERATION = {"hide": ("public", "hidden"), "show": ("hidden", "public")}


async def moderate_media(
    session: AsyncSession,
    staff: Account,
    incident_id: uuid.UUID,
    media_id: uuid.UUID,
    action: str,
    note: str | None,
    ctx: AuditContext,
) -> Incident:
    """Hide (reversible) or redact (public versions deleted for good) a photo or video."""
    incident = await get_for_staff(session, staff, incident_id)
    link = await session.get(IncidentMedia, (incident_id, media_id))
    if link is None:
        raise AppError(errors.MEDIA_NOT_FOUND)
    before = link.visibility
    if action == "redact":
        if before != "redacted":
            await media_public.withdraw_public_versions(session, media_id)
        link.visibility = "redacted"
    else:
        allowed_from, after = MODERATION[action]
        if before != allowed_from:
            raise AppError(
                errors.INVALID_MEDIA_ACTION, params={"action": action, "visibility": before}
            )
        link.visibility = after
    session.add(link)
    incident.updated_at = clock.now()
    session.add(incident)
    details = {"media_id": str(media_id), "from": before, "to": link.visibility}
    await _record(
        session,
        incident,
        f"media_{action}",
        actor_id=staff.id,
        from_status=incident.status,
        to_status=incident.status,
        note=note,
        details=details,
    )
    await audit.record(
        session,
        ctx,
        f"incident.media_{action}",
        subject_id=incident.reporter_id,
        resource=f"incident:{incident.id}",
        details=details,
    )
    return incident


# ---------------------------------------------------------------- personal data


async def export_incidents(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    reported = await session.execute(
        sa.select(Incident).where(col(Incident.reporter_id) == user_id)
    )
    followed = await session.execute(
        sa.select(IncidentSubscription).where(col(IncidentSubscription.user_id) == user_id)
    )
    return {
        "reported": [i.model_dump(mode="json") for i in reported.scalars()],
        "following": [s.model_dump(mode="json") for s in followed.scalars()],
    }


async def erase_incidents(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    """Reports stay as public records of the road, no longer linked to the person."""
    result = await session.execute(
        sa.update(Incident)
        .where(col(Incident.reporter_id) == user_id)
        .values(reporter_id=None, reporter_display_name=None, anonymous=True)
    )
    await session.execute(
        sa.delete(IncidentSubscription).where(col(IncidentSubscription.user_id) == user_id)
    )
    if not rows_matched(result):
        return []
    return [
        Retained(
            data=f"{rows_matched(result)} traffic-incident reports, anonymised",
            reason_vi="Phản ánh sự cố giao thông là thông tin công cộng về hạ tầng; "
            "đã xoá liên kết với bạn.",
            reason_en="Traffic-incident reports are public records about the road; the link to you "
            "was removed.",
        )
    ]


def _register_personal_data() -> None:
    from app.core import personal_data

    personal_data.register("incidents", exporter=export_incidents, eraser=erase_incidents)


_register_personal_data()
