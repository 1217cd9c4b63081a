"""What each audience sees of an incident: the public, its reporter, staff of its ward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.incidents import schemas, service
from app.incidents.models import PUBLIC_FIELDS, Incident
from app.incidents.renditions import Viewer

Audience = Literal["public", "owner", "staff"]


def _base(incident: Incident, audience: Audience) -> dict[str, Any]:
    data = incident.model_dump(include=set(PUBLIC_FIELDS))
    shown = audience != "public" or not incident.anonymous
    data["reporter"] = incident.reporter_display_name if shown else None
    if audience == "staff":
        data.update(
            reporter_id=incident.reporter_id,
            camera_id=incident.camera_id,
            confidence=incident.confidence,
            duplicate_of_id=incident.duplicate_of_id,
        )
    return data


def audience_of(incident: Incident, user: Any | None) -> Audience:
    if user is not None and service.can_manage(user, incident):
        return "staff"
    if user is not None and incident.reporter_id == user.id:
        return "owner"
    return "public"


def viewer_of(audience: Audience, user: Any | None) -> Viewer:
    """Whose files are "theirs" (originals) and whether staff rules apply (`renditions`)."""
    return Viewer(user_id=user.id if user is not None else None, staff=audience == "staff")


async def detail(
    session: AsyncSession,
    incident: Incident,
    audience: Audience,
    user: Any | None,
) -> dict[str, Any]:
    """`user`: who is looking (None: nobody signed in); media follow `renditions.render`."""
    data = _base(incident, audience)
    data["timeline"] = [
        schemas.EventOut.model_validate(e, from_attributes=True)
        for e in await service.public_timeline(session, incident.id)
    ]
    media = await service.media_views_by_incident(session, [incident.id], viewer_of(audience, user))
    data["media"] = media.get(incident.id, [])
    return data


async def summaries(
    session: AsyncSession,
    incidents: list[Incident],
    audience: Audience | Callable[[Incident], Audience],
    user: Any | None,
) -> list[dict[str, Any]]:
    """List items: no timeline; media in one query per audience for the whole page."""
    of = audience if callable(audience) else (lambda _incident: audience)
    audiences = {i.id: of(i) for i in incidents}
    media: dict[Any, list[dict[str, Any]]] = {}
    for kind in set(audiences.values()):
        ids = [i for i, a in audiences.items() if a == kind]
        media.update(await service.media_views_by_incident(session, ids, viewer_of(kind, user)))
    out = []
    for incident in incidents:
        data = _base(incident, audiences[incident.id])
        data["media"] = media.get(incident.id, [])
        out.append(data)
    return out
