"""Open311 GeoReport v2 at /open311/v2/, in JSON and XML, so existing civic tools can read and
file traffic-incident reports.

Services are the incident categories. Reads show verified, in-progress and resolved incidents;
a request looked up by its id shows only its status until staff have verified it. Filing needs
either a citizen's bearer token (the report is theirs, duplicates become a "me too") or a
partner `api_key` from INCIDENT_OPEN311_API_KEYS (the report has no reporter). Errors follow the
spec: a list of {code, description}, with the HTTP status.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from xml.etree import ElementTree as ET

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin_units import service as admin_units
from app.core import clock
from app.core.errors import AppError
from app.core.i18n import negotiate
from app.identity.dependencies import DbSession, current_principal
from app.incidents import errors, renditions, service
from app.incidents.categories import CATEGORIES
from app.incidents.config import get_incident_settings
from app.incidents.models import Incident

router = APIRouter(prefix="/open311/v2", tags=["open311"])

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-25T00:00:00Z"
FORMATS = {"json": "application/json", "xml": "text/xml"}
# A list without ids covers this many days by default (as the spec suggests) and at most this
# many requests.
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        self.status, self.description = status, description


# ---------------------------------------------------------------- JSON shapes (documentation)


class ServiceOut(BaseModel):
    service_code: str
    service_name: str
    description: str | None
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str | None
    group: str | None


class ServiceDefinitionOut(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]]


class RequestOut(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str | None
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class CreatedOut(BaseModel):
    service_request_id: str
    service_notice: str | None
    account_id: str | None


class DiscoveryOut(BaseModel):
    changeset: str
    contact: str
    key_service: str
    endpoints: list[dict[str, Any]]


# ---------------------------------------------------------------- rendering


def _xml_value(parent: ET.Element, tag: str, value: Any) -> None:
    child = ET.SubElement(parent, tag)
    if isinstance(value, list):
        item_tag = {
            "formats": "format",
            "endpoints": "endpoint",
            "attributes": "attribute",
            "values": "value",
        }.get(tag, "item")
        for item in value:
            _xml_value(child, item_tag, item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            _xml_value(child, key, inner)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)


def render(fmt: str, root: str, item: str | None, data: Any, status: int = 200) -> Response:
    if fmt == "json":
        return Response(orjson.dumps(data), status_code=status, media_type=FORMATS["json"])
    element = ET.Element(root)
    for entry in data if item else [data]:
        parent = ET.SubElement(element, item) if item else element
        for key, value in entry.items():
            _xml_value(parent, key, value)
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        element, encoding="utf-8", xml_declaration=False
    )
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def _error_response(fmt: str, status: int, description: str) -> Response:
    return render(
        fmt if fmt in FORMATS else "json",
        "errors",
        "error",
        [{"code": status, "description": description}],
        status,
    )


async def _guard(fmt: str, request: Request, run: Callable[[], Awaitable[Response]]) -> Response:
    if fmt not in FORMATS:
        return _error_response("json", 404, "Unknown format: use .json or .xml")
    jurisdiction = request.query_params.get("jurisdiction_id")
    if jurisdiction and jurisdiction != get_incident_settings().incident_open311_jurisdiction_id:
        return _error_response(fmt, 404, f"Unknown jurisdiction_id: {jurisdiction}")
    try:
        return await run()
    except Open311Error as exc:
        return _error_response(fmt, exc.status, exc.description)
    except AppError as exc:
        # The same checks as the app's API, in Open311's error format.
        language = negotiate(request.headers.get("accept-language"))
        message = exc.error.message(language, exc.params)
        # Open311 clients know 400/403/404 (and 429 for rate limits): map conflicts and
        # validation failures to 400.
        status = 400 if exc.error.status in (409, 422) else exc.error.status
        return _error_response(fmt, status, f"{exc.error.code}: {message}")


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else clock.as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _service(code: str, language: str) -> dict[str, Any]:
    category = CATEGORIES[code]
    return {
        "service_code": code,
        "service_name": category.vi if language == "vi" else category.en,
        "description": category.description_en,
        "metadata": False,
        "type": "realtime",
        "keywords": f"traffic,{code.replace('_', ' ')}",
        "group": "traffic",
    }


# ---------------------------------------------------------------- endpoints

MEDIA: dict[str, dict[str, Any]] = {"application/json": {}, "text/xml": {}}


class Open311ErrorOut(BaseModel):
    """One entry of Open311's own error list (GeoReport v2), which its clients parse: these
    routes answer errors in it, not in problem+json."""

    code: int
    description: str


_ERRORS = {"model": list[Open311ErrorOut], "content": {"text/xml": {}}}
ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": MEDIA},
    400: {"description": "Invalid request", **_ERRORS},
    403: {"description": "Not allowed", **_ERRORS},
    404: {"description": "Unknown format (use .json or .xml), jurisdiction or item", **_ERRORS},
    429: {"description": "Rate limited", **_ERRORS},
}


@router.get(
    "/discovery.{fmt}", response_model=DiscoveryOut, summary="Open311 discovery", responses=ANSWERS
)
async def discovery(fmt: str, request: Request) -> Response:
    async def run() -> Response:
        from app.core.config import get_settings

        base = get_settings().public_base_url
        data = {
            "changeset": CHANGESET,
            "contact": "Trung tâm Điều hành thông minh tỉnh Thái Nguyên (IOC)",
            "key_service": "Partner api_key: ask the IOC; citizens use their Thai Nguyen ID token",
            "endpoints": [
                {
                    "specification": SPEC_URL,
                    "url": f"{base}/open311/v2",
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": list(FORMATS.values()),
                }
            ],
        }
        return render(fmt, "discovery", None, data)

    return await _guard(fmt, request, run)


@router.get(
    "/services.{fmt}",
    response_model=list[ServiceOut],
    summary="Open311 service list",
    responses=ANSWERS,
)
async def services(fmt: str, request: Request) -> Response:
    async def run() -> Response:
        language = negotiate(request.headers.get("accept-language"))
        return render(fmt, "services", "service", [_service(c, language) for c in CATEGORIES])

    return await _guard(fmt, request, run)


@router.get(
    "/services/{code}.{fmt}",
    response_model=ServiceDefinitionOut,
    summary="Open311 service definition (no extra attributes)",
    responses=ANSWERS,
)
async def service_definition(code: str, fmt: str, request: Request) -> Response:
    async def run() -> Response:
        if code not in CATEGORIES:
            raise Open311Error(404, f"Unknown service_code: {code}")
        return render(fmt, "service_definition", None, {"service_code": code, "attributes": []})

    return await _guard(fmt, request, run)


def _float(params: Any, name: str) -> float:
    raw = params.get(name)
    if raw in (None, ""):
        raise Open311Error(400, f"{name} is required")
    try:
        return float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None


def _date(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _reporter(session: AsyncSession, request: Request, api_key: str | None) -> Any:
    """A citizen (bearer token) or a partner name (api_key); 403 otherwise."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer" and token:
        try:
            principal = await current_principal(
                session, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
            )
        except AppError:
            raise Open311Error(403, "Invalid or expired access token") from None
        return principal.user
    partners = get_incident_settings().incident_open311_api_keys
    if api_key and api_key in partners:
        return partners[api_key]
    raise Open311Error(403, "A valid api_key or a citizen's bearer token is required")


@router.post(
    "/requests.{fmt}",
    response_model=list[CreatedOut],
    summary="Open311: file a service request (form-encoded)",
    responses=ANSWERS,
)
async def create_request(fmt: str, request: Request, session: DbSession) -> Response:
    async def run() -> Response:
        form = await request.form()
        code = str(form.get("service_code") or "")
        if code not in CATEGORIES:
            raise Open311Error(400, f"Unknown service_code: {code or '(none)'}")
        lat, lon = _float(form, "lat"), _float(form, "long")
        address = str(form.get("address_string") or "") or None
        description = str(form.get("description") or "") or None
        if description and len(description) > 2000:
            raise Open311Error(400, "description is longer than 2000 characters")
        if address and len(address) > 300:
            raise Open311Error(400, "address_string is longer than 300 characters")
        who = await _reporter(session, request, str(form.get("api_key") or "") or None)
        if isinstance(who, str):
            incident, joined = await service.report_for_partner(
                session,
                who,
                category=code,
                lat=lat,
                lon=lon,
                address=address,
                description=description,
            )
            account_id = None
        else:
            account_id = str(who.id)
            try:
                incident = await service.report(
                    session,
                    who,
                    category=code,
                    lat=lat,
                    lon=lon,
                    address=address,
                    description=description,
                    media_ids=[],
                    anonymous=False,
                    confirm_new=False,
                    source="open311",
                )
                joined = False
            except AppError as exc:
                if exc.error is not errors.POSSIBLE_DUPLICATE:
                    raise
                twin = uuid.UUID(exc.extra["candidates"][0]["id"])
                incident, joined = await service.me_too(session, who, twin), True
        notice = (
            "Joined an open report of the same problem nearby"
            if joined
            else "Received; ward staff will verify it"
        )
        return render(
            fmt,
            "service_requests",
            "request",
            [
                {
                    "service_request_id": str(incident.id),
                    "service_notice": notice,
                    "account_id": account_id,
                }
            ],
        )

    return await _guard(fmt, request, run)


async def _records(
    session: AsyncSession, incidents: list[Incident], language: str
) -> list[dict[str, Any]]:
    notes = await service.latest_notes(session, [i.id for i in incidents])
    media = await service.media_views_by_incident(
        session, [i.id for i in incidents], renditions.PUBLIC
    )
    agencies: dict[str | None, str] = {None: "Tỉnh Thái Nguyên"}
    out = []
    for incident in incidents:
        if incident.ward_code not in agencies:
            unit = await admin_units.find_unit(session, incident.ward_code or "")
            agencies[incident.ward_code] = unit.name if unit else incident.ward_code or ""
        category = CATEGORIES[incident.category]
        public = incident.status in service.PUBLIC
        record: dict[str, Any] = {
            "service_request_id": str(incident.id),
            "status": "open" if incident.status in service.OPEN else "closed",
            "status_notes": notes.get(incident.id) if public else _pending_note(incident.status),
            "service_name": category.vi if language == "vi" else category.en,
            "service_code": incident.category,
            "description": incident.description if public else None,
            "agency_responsible": agencies[incident.ward_code],
            "service_notice": None,
            "requested_datetime": _timestamp(incident.created_at),
            "updated_datetime": _timestamp(incident.updated_at),
            "expected_datetime": None,
            "address": incident.address if public else None,
            "address_id": None,
            "zipcode": None,
            "lat": incident.lat if public else None,
            "long": incident.lon if public else None,
            "media_url": next((m["url"] for m in media.get(incident.id, []) if m.get("url")), None),
        }
        out.append(record)
    return out


def _pending_note(status: str) -> str:
    return {
        "new": "Awaiting verification by ward staff",
        "rejected_spam": "Rejected",
        "rejected_duplicate": "Closed as a duplicate",
    }.get(status, status)


def _csv(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


@router.get(
    "/requests.{fmt}",
    response_model=list[RequestOut],
    summary="Open311: service requests (public incidents)",
    responses=ANSWERS,
)
async def list_requests(fmt: str, request: Request, session: DbSession) -> Response:
    async def run() -> Response:
        params = request.query_params
        ids = None
        if params.get("service_request_id"):
            try:
                ids = [uuid.UUID(i) for i in _csv(params.get("service_request_id"))][:100]
            except ValueError:
                raise Open311Error(400, "service_request_id must be ids we issued") from None
        codes = _csv(params.get("service_code"))
        unknown = [c for c in codes if c not in CATEGORIES]
        if unknown:
            raise Open311Error(400, f"Unknown service_code: {', '.join(unknown)}")
        wanted = set(_csv(params.get("status")))
        if wanted - {"open", "closed"}:
            raise Open311Error(400, "status must be open and/or closed")
        statuses = [
            s
            for s in service.PUBLIC
            if (not wanted) or ("open" if s in service.OPEN else "closed") in wanted
        ]
        start = _date(params.get("start_date"), "start_date")
        end = _date(params.get("end_date"), "end_date")
        if ids is None and start is None:
            start = (end or clock.now()) - timedelta(days=DEFAULT_DAYS)
        incidents = await service.search_public(
            session,
            ids=ids,
            categories=codes or None,
            statuses=statuses,
            start=start,
            end=end,
            limit=MAX_REQUESTS,
        )
        language = negotiate(request.headers.get("accept-language"))
        return render(
            fmt, "service_requests", "request", await _records(session, incidents, language)
        )

    return await _guard(fmt, request, run)


@router.get(
    "/requests/{request_id}.{fmt}",
    response_model=list[RequestOut],
    summary="Open311: one service request",
    responses=ANSWERS,
)
async def get_request(request_id: str, fmt: str, request: Request, session: DbSession) -> Response:
    async def run() -> Response:
        try:
            ident = uuid.UUID(request_id)
        except ValueError:
            raise Open311Error(404, "No such service request") from None
        found = await service.search_public(
            session, ids=[ident], categories=None, statuses=None, start=None, end=None, limit=1
        )
        if not found:
            raise Open311Error(404, "No such service request")
        language = negotiate(request.headers.get("accept-language"))
        return render(fmt, "service_requests", "request", await _records(session, found, language))

    return await _guard(fmt, request, run)
