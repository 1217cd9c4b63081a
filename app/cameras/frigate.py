"""Frigate NVR's `frigate/events` message → our alert, so a city running Frigate needs no code of
its own beyond an MQTT-to-webhook bridge.

Frigate sends `new`, then `update`s, then `end` for each tracked object. The alert type comes
from the object's label where Frigate has one for it (`fire`, `smoke`), otherwise from a zone
named after an alert type (e.g. a zone `wrong_way` drawn on the contraflow lane, `flooding` on a
low point of the road, `crowd` on a square). The first `new`/`update` that maps to a type becomes
the alert (the event id is Frigate's object id, so later updates are the same event); `end`,
false positives and objects that map to no type are acknowledged and ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.cameras.schemas import AlertType, BoundingBox, CameraAlertIn, FrigateEvent

LABEL_TYPES = {"fire": AlertType.FIRE, "smoke": AlertType.SMOKE}
ZONE_TYPES = {t.value: t for t in AlertType}


def alert_type(event: FrigateEvent) -> AlertType | None:
    state = event.after
    if state.label.lower() in LABEL_TYPES:
        return LABEL_TYPES[state.label.lower()]
    for zone in (*state.current_zones, *state.entered_zones):
        found = ZONE_TYPES.get(zone.lower().replace("-", "_"))
        if found is not None:
            return found
    return None


def to_alert(event: FrigateEvent) -> CameraAlertIn | str:
    """The alert, or why this message is no alert."""
    state = event.after
    if event.type == "end":
        return "the event ended"
    if state.false_positive:
        return "marked as a false positive by Frigate"
    kind = alert_type(event)
    if kind is None:
        return f"label '{state.label}' in zones {state.current_zones or []} maps to no alert type"
    boxes: list[BoundingBox] = []
    if state.box and len(state.box) == 4 and event.frame_width and event.frame_height:
        x1, y1, x2, y2 = state.box
        w, h = event.frame_width, event.frame_height
        if 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h:
            boxes.append(
                BoundingBox(
                    label=state.label,
                    x=x1 / w,
                    y=y1 / h,
                    width=(x2 - x1) / w,
                    height=(y2 - y1) / h,
                    confidence=state.score,
                )
            )
    return CameraAlertIn(
        event_id=f"frigate:{state.id}",
        camera_id=state.camera,
        type=kind,
        confidence=state.top_score if state.top_score is not None else (state.score or 0.0),
        occurred_at=datetime.fromtimestamp(state.start_time, tz=UTC),
        plate_text=(state.recognized_license_plate or None),
        boxes=boxes,
        snapshot=event.snapshot,
    )
