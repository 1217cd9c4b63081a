"""The one rule of which rendition of which photo or video a viewer of an incident gets.

- A file's *original* (faces, plates, EXIF as received) goes by signed link only to the citizen
  who uploaded that very file. Nobody else gets a link to an original: not the reporter of an
  incident a camera's picture joined, not a follower, not staff. Staff read originals through
  `GET /api/v1/staff/incidents/{id}/media/{media_id}/original?reason=`, which is audited.
- Everyone else gets the public (blurred) versions, once the worker made them.
- `hidden` and `redacted` are honoured for every audience but staff (who moderate): such a file is
  not listed to the public or to followers, and its uploader sees it listed without any link.

Every view of incident media (detail, lists, "my incidents", the nearby feed, Open311) goes
through `render`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ORIGINAL = "original"  # app.media.public.ORIGINAL (the name in signed links)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: nobody signed in (`user_id` None), a citizen, or staff of the incident's
    ward reading through a staff endpoint (`staff`)."""

    user_id: uuid.UUID | None = None
    staff: bool = False


PUBLIC = Viewer()


@dataclass(slots=True)
class Item:
    """What the rule needs to know of one file attached to an incident."""

    media_id: uuid.UUID
    visibility: str  # public | hidden | redacted
    uploader_id: uuid.UUID | None  # None: evidence the system recorded (a camera's picture)
    kind: str | None
    processing: str | None  # pending | ready | failed, None: never queued
    error_code: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    versions: frozenset[str] = frozenset()
    present: bool = True  # the media row exists


def render(
    item: Item, viewer: Viewer, sign: Callable[[uuid.UUID, str], str]
) -> dict[str, Any] | None:
    """The view of `item` for `viewer` (None: not shown to them at all)."""
    own = viewer.user_id is not None and item.uploader_id == viewer.user_id
    public = item.visibility == "public"
    ready = item.processing == "ready"
    if not (viewer.staff or own or (public and ready)):
        return None
    media_id = item.media_id
    view: dict[str, Any] = {
        "id": media_id,
        "visibility": item.visibility,
        "ready": ready,
        "kind": item.kind,
    }
    if not item.present:
        return view
    if item.processing is not None:
        view["processing"] = item.processing
        view["error_code"] = item.error_code
    if ready:
        view["width"] = item.width
        view["height"] = item.height
        view["duration_s"] = item.duration_s
    if not public and not viewer.staff:
        return view  # hidden or redacted: listed to its uploader, without a link
    versions = item.versions
    video = item.kind == "video"
    if "w320" in versions:
        view["thumbnail_url"] = sign(media_id, "w320")
    if video and "w1280" in versions:
        view["poster_url"] = sign(media_id, "w1280")
    if own and public:
        view["url"] = sign(media_id, ORIGINAL)
    else:
        shown = "video" if video else "w1280"
        view["url"] = sign(media_id, shown) if shown in versions else None
    return view
