"""The `camera.offline` and `camera.event` notices for ward staff, rendered by the notifications
domain.

The notifications domain owns templates; these two kinds are registered from here (the only
templates the cameras domain needs beyond `camera.alert` and `traffic.warning`, which
notifications ships) so that the two domains could be built side by side. `camera.event` is for
alerts with no incident category (a crowd): `camera.alert` links to an incident.
Moving them into `app/notifications/templates.py` later changes nothing for the mobile app: the
payloads are described by `mobile_contracts/push/camera.{offline,event}.schema.json`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.core import deep_links
from app.core.clock import LOCAL_TZ
from app.core.i18n import Language
from app.notifications import templates

KIND = "camera.offline"
EVENT_KIND = "camera.event"


# Every parameter has a default so that any template renders (the notifications tests render
# every registered kind with generic parameters); the cameras domain always sends them all.
class CameraOfflineParams(templates.TemplateParams):
    camera_id: str = Field(default="", max_length=64)
    camera_code: str = Field(default="", max_length=64)
    camera_name: str = Field(default="", max_length=200)
    ward_code: str = Field(default="", max_length=32)
    offline_since: str = Field(default="", max_length=40)


def _since(value: str) -> str:
    try:
        return datetime.fromisoformat(value).astimezone(LOCAL_TZ).strftime("%H:%M %d/%m/%Y")
    except ValueError:
        return ""


def _named(p: CameraOfflineParams | CameraEventParams) -> str:
    if p.camera_name and p.camera_code:
        return f" {p.camera_name} ({p.camera_code})"
    return f" {p.camera_name or p.camera_code}" if (p.camera_name or p.camera_code) else ""


def _render(p: CameraOfflineParams, lang: Language) -> templates.Rendered:
    since = _since(p.offline_since)
    if lang == "vi":
        when = f" từ {since}" if since else ""
        return templates.Rendered(
            "Camera mất tín hiệu", f"Camera{_named(p)} không gửi tín hiệu{when}."
        )
    when = f" since {since}" if since else ""
    return templates.Rendered("Camera offline", f"Camera{_named(p)} has been silent{when}.")


TEMPLATE = templates.Template(
    kind=KIND,
    category=templates.STAFF_CATEGORY,
    urgent=False,
    ttl_seconds=6 * 3600,
    android_channel="staff_alerts",
    params=CameraOfflineParams,
    # No camera screen in the app yet: the notice opens the inbox.
    deep_link=lambda p: deep_links.inbox(),
    collapse_key=lambda p: f"camera-offline-{p.camera_id}",
    render=_render,
    data=lambda p: {"camera_id": p.camera_id, "camera_code": p.camera_code},
)
templates.TEMPLATES.setdefault(KIND, TEMPLATE)


class CameraEventParams(templates.TemplateParams):
    alert_id: str = Field(default="", max_length=64)
    alert_type: str = Field(default="", max_length=64)
    camera_code: str = Field(default="", max_length=64)
    camera_name: str = Field(default="", max_length=200)
    ward_code: str = Field(default="", max_length=32)


def _render_event(p: CameraEventParams, lang: Language) -> templates.Rendered:
    if lang == "vi":
        kind = templates.label(templates.ALERT_TYPES, p.alert_type or "", lang) or "Sự cố"
        return templates.Rendered(
            f"Cảnh báo camera: {kind}", f"{kind} — camera{_named(p)}. Vui lòng kiểm tra ngay."
        )
    kind = templates.label(templates.ALERT_TYPES, p.alert_type or "", lang) or "Event"
    return templates.Rendered(
        f"Camera alert: {kind}", f"{kind} — camera{_named(p)}. Please check at once."
    )


EVENT_TEMPLATE = templates.Template(
    kind=EVENT_KIND,
    category=templates.STAFF_CATEGORY,
    urgent=True,
    ttl_seconds=3600,
    android_channel="staff_alerts",
    params=CameraEventParams,
    deep_link=lambda p: deep_links.inbox(),
    collapse_key=lambda p: f"camera-event-{p.alert_id}",
    render=_render_event,
    data=lambda p: {
        "alert_id": p.alert_id,
        "alert_type": p.alert_type,
        "camera_code": p.camera_code,
    },
)
templates.TEMPLATES.setdefault(EVENT_KIND, EVENT_TEMPLATE)
