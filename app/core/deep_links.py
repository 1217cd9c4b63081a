"""The app's deep links, one builder per screen of `mobile_contracts/deep_links.json`.

Producers put them in their events and the notifications domain in its pushes: both call these,
so a link is spelled in one place.
"""

from __future__ import annotations

SCHEME = "cthainguyen://"


def dossier(code_or_id: str) -> str:
    return f"{SCHEME}dossiers/{code_or_id}"


def incident(incident_id: object) -> str:
    return f"{SCHEME}incidents/{incident_id}"


def staff_incident(incident_id: object) -> str:
    return f"{SCHEME}staff/incidents/{incident_id}"


def announcement(announcement_id: object) -> str:
    return f"{SCHEME}announcements/{announcement_id}"


def inbox() -> str:
    return f"{SCHEME}notifications"
