"""Templates per event kind, in Vietnamese and English, with their push settings.

Each kind declares the parameters it needs (a pydantic model, checked when a producer calls
`notify`), its category (what a citizen can switch off), whether it is urgent (urgent pushes
ignore quiet hours), TTL and collapse key (a newer status replaces an older one on the device),
the Android channel, the deep link (from `mobile_contracts/deep_links.json`) and the extra FCM
data fields, which `mobile_contracts/push/<kind>.schema.json` describes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core import deep_links
from app.core.i18n import Language

# Categories a citizen may switch off, and the one for staff work alerts (always on).
CATEGORIES = ("dossier_updates", "incident_updates", "ward_announcements", "traffic_alerts")
STAFF_CATEGORY = "staff_alerts"


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


# The base of a template's parameters, for the templates other domains register (cameras).
TemplateParams = _Params


class DossierParams(_Params):
    dossier_id: str = Field(min_length=1, max_length=64)
    dossier_code: str = Field(default="", max_length=64)
    status: str = Field(min_length=1, max_length=64)
    procedure_name: str = Field(default="", max_length=300)
    procedure_name_en: str = Field(default="", max_length=300)
    appointment_date: str = Field(default="", max_length=32)


class IncidentParams(_Params):
    incident_id: str = Field(min_length=1, max_length=64)
    status: str = Field(min_length=1, max_length=64)
    incident_title: str = Field(default="", max_length=300)


class CameraAlertParams(_Params):
    incident_id: str = Field(min_length=1, max_length=64)
    alert_type: str = Field(min_length=1, max_length=64)
    camera_name: str = Field(default="", max_length=200)
    ward_code: str = Field(default="", max_length=32)


class TrafficWarningParams(_Params):
    incident_id: str = Field(min_length=1, max_length=64)
    alert_type: str = Field(min_length=1, max_length=64)
    place: str = Field(default="", max_length=200)


class AnnouncementParams(_Params):
    announcement_id: str = Field(min_length=1, max_length=64)
    title_vi: str = Field(min_length=1, max_length=200)
    body_vi: str = Field(min_length=1, max_length=1000)
    title_en: str | None = Field(default=None, max_length=200)
    body_en: str | None = Field(default=None, max_length=1000)


# Labels of the statuses the producing domains use (issue 4 and 5 state machines). An unknown
# status still renders, with its raw name, rather than losing the notification.
DOSSIER_STATUS: dict[str, tuple[str, str]] = {
    "submitted": ("đã được nộp", "has been submitted"),
    "received": ("đã được tiếp nhận", "has been received"),
    "rejected_at_intake": ("bị từ chối tiếp nhận", "was not accepted at intake"),
    "assigned": ("đang được xử lý", "is being processed"),
    "in_progress": ("đang được xử lý", "is being processed"),
    "supplement_requested": ("cần bổ sung giấy tờ", "needs additional documents"),
    "supplemented": ("đã được bổ sung", "has been supplemented"),
    "approved": ("đã được phê duyệt", "has been approved"),
    "rejected": ("bị từ chối", "was rejected"),
    "result_returned": ("đã có kết quả", "has its result ready"),
    "completed": ("đã hoàn thành", "is completed"),
    "extended": ("được gia hạn xử lý", "has a new appointment date"),
    "stopped": ("bị dừng xử lý", "was stopped"),
    "withdrawn": ("đã được rút", "was withdrawn"),
}
INCIDENT_STATUS: dict[str, tuple[str, str]] = {
    "submitted": ("đã được gửi", "has been submitted"),
    "pending_review": ("đang chờ kiểm duyệt", "is awaiting review"),
    "published": ("đã được duyệt và công khai", "was approved and published"),
    "verified": ("đã được xác minh", "has been verified"),
    "in_progress": ("đang được xử lý", "is being handled"),
    "resolved": ("đã được xử lý xong", "has been resolved"),
    "rejected": ("không được duyệt", "was not approved"),
    "duplicate": ("trùng với phản ánh khác", "duplicates another report"),
    "closed": ("đã đóng", "was closed"),
}
ALERT_TYPES: dict[str, tuple[str, str]] = {
    "accident": ("Tai nạn giao thông", "Traffic accident"),
    "congestion": ("Ùn tắc giao thông", "Traffic jam"),
    "jam": ("Ùn tắc giao thông", "Traffic jam"),
    "wrong_way": ("Xe đi ngược chiều", "Vehicle going the wrong way"),
    "red_light": ("Vượt đèn đỏ", "Red light violation"),
    "flooding": ("Ngập lụt", "Flooding"),
    "fire": ("Cháy", "Fire"),
    "smoke": ("Khói, nguy cơ cháy", "Smoke"),
    "crowd": ("Tụ tập đông người", "Crowd"),
}


def label(table: dict[str, tuple[str, str]], key: str, language: Language) -> str:
    pair = table.get(key)
    if pair is None:
        return key.replace("_", " ")
    return pair[0] if language == "vi" else pair[1]


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


@dataclass(frozen=True)
class Template:
    kind: str
    category: str
    urgent: bool
    ttl_seconds: int
    android_channel: str
    params: type[_Params]
    deep_link: Callable[[Any], str]
    collapse_key: Callable[[Any], str]
    render: Callable[[Any, Language], Rendered]
    # Extra FCM data fields (strings) beyond the common ones.
    data: Callable[[Any], dict[str, str]] = field(default=lambda p: {})


def _dossier(p: DossierParams, lang: Language) -> Rendered:
    what = label(DOSSIER_STATUS, p.status, lang)
    code = f" {p.dossier_code}" if p.dossier_code else ""
    if lang == "vi":
        proc = f" ({p.procedure_name})" if p.procedure_name else ""
        title = "Cập nhật hồ sơ" + code
        body = f"Hồ sơ{code}{proc} {what}."
        if p.status in ("received", "extended") and p.appointment_date:
            body += f" Ngày hẹn trả kết quả: {p.appointment_date}."
    else:
        name = p.procedure_name_en or p.procedure_name
        proc = f" ({name})" if name else ""
        title = "Dossier update" + code
        body = f"Your dossier{code}{proc} {what}."
        if p.status in ("received", "extended") and p.appointment_date:
            body += f" Result expected on {p.appointment_date}."
    return Rendered(title, body)


def _incident(p: IncidentParams, lang: Language) -> Rendered:
    what = label(INCIDENT_STATUS, p.status, lang)
    if lang == "vi":
        subject = f"Phản ánh “{p.incident_title}”" if p.incident_title else "Phản ánh của bạn"
        return Rendered("Cập nhật phản ánh", f"{subject} {what}.")
    subject = f"Your report “{p.incident_title}”" if p.incident_title else "Your report"
    return Rendered("Report update", f"{subject} {what}.")


def _camera(p: CameraAlertParams, lang: Language) -> Rendered:
    kind = label(ALERT_TYPES, p.alert_type, lang)
    where = f" — {p.camera_name}" if p.camera_name else ""
    if lang == "vi":
        return Rendered(f"Cảnh báo camera: {kind}", f"{kind}{where}. Vui lòng xác minh sự cố.")
    return Rendered(f"Camera alert: {kind}", f"{kind}{where}. Please verify the incident.")


def _traffic(p: TrafficWarningParams, lang: Language) -> Rendered:
    kind = label(ALERT_TYPES, p.alert_type, lang)
    if lang == "vi":
        where = f" tại {p.place}" if p.place else " gần bạn"
        return Rendered(f"Cảnh báo: {kind}", f"{kind}{where}. Hãy chú ý an toàn.")
    where = f" at {p.place}" if p.place else " near you"
    return Rendered(f"Warning: {kind}", f"{kind}{where}. Please take care.")


def _announcement(p: AnnouncementParams, lang: Language) -> Rendered:
    if lang == "en" and p.title_en and p.body_en:
        return Rendered(p.title_en, p.body_en)
    return Rendered(p.title_vi, p.body_vi)


TEMPLATES: dict[str, Template] = {
    t.kind: t
    for t in (
        Template(
            kind="dossier.status_changed",
            category="dossier_updates",
            urgent=False,
            ttl_seconds=7 * 86400,
            android_channel="dossier_updates",
            params=DossierParams,
            # The code is what the app's dossier screen and the API address a dossier by.
            deep_link=lambda p: deep_links.dossier(p.dossier_code or p.dossier_id),
            collapse_key=lambda p: f"dossier-{p.dossier_id}",
            render=_dossier,
            data=lambda p: {
                "dossier_id": p.dossier_id,
                "status": p.status,
                "dossier_code": p.dossier_code,
            },
        ),
        Template(
            kind="incident.status_changed",
            category="incident_updates",
            urgent=False,
            ttl_seconds=3 * 86400,
            android_channel="incident_updates",
            params=IncidentParams,
            deep_link=lambda p: deep_links.incident(p.incident_id),
            collapse_key=lambda p: f"incident-{p.incident_id}",
            render=_incident,
            data=lambda p: {"incident_id": p.incident_id, "status": p.status},
        ),
        Template(
            kind="camera.alert",
            category=STAFF_CATEGORY,
            urgent=True,
            ttl_seconds=3600,
            android_channel="staff_alerts",
            params=CameraAlertParams,
            deep_link=lambda p: deep_links.staff_incident(p.incident_id),
            collapse_key=lambda p: f"camera-{p.incident_id}",
            render=_camera,
            data=lambda p: {"incident_id": p.incident_id, "alert_type": p.alert_type},
        ),
        Template(
            kind="traffic.warning",
            category="traffic_alerts",
            urgent=True,
            ttl_seconds=1800,
            android_channel="traffic_alerts",
            params=TrafficWarningParams,
            deep_link=lambda p: deep_links.incident(p.incident_id),
            collapse_key=lambda p: f"warning-{p.incident_id}",
            render=_traffic,
            data=lambda p: {"incident_id": p.incident_id, "alert_type": p.alert_type},
        ),
        Template(
            kind="announcement",
            category="ward_announcements",
            urgent=False,
            ttl_seconds=3 * 86400,
            android_channel="ward_announcements",
            params=AnnouncementParams,
            deep_link=lambda p: deep_links.announcement(p.announcement_id),
            collapse_key=lambda p: f"announcement-{p.announcement_id}",
            render=_announcement,
            data=lambda p: {"announcement_id": p.announcement_id},
        ),
    )
}


def get(kind: str) -> Template:
    try:
        return TEMPLATES[kind]
    except KeyError:
        raise ValueError(f"no notification template for kind {kind!r}") from None
