"""HTTP endpoints of public services. Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlmodel import col

from app.core import audit
from app.core import errors as core_errors
from app.core.errors import AppError, responses
from app.core.i18n import Language, negotiate
from app.dossiers import errors, schemas, service
from app.dossiers.models import DossierDocument
from app.dossiers.workflow import Status
from app.identity.dependencies import (
    CurrentPrincipal,
    DbSession,
    DirectStaff,
    StaffPrincipal,
    audit_context,
    client_ip,
)
from app.media import errors as media_errors
from app.media import service as media

router = APIRouter()
procedures = APIRouter(prefix="/api/v1/procedures", tags=["public services"])
citizen = APIRouter(prefix="/api/v1/dossiers", tags=["public services"])
public = APIRouter(prefix="/api/v1/public/dossiers", tags=["public services"])
staff = APIRouter(prefix="/api/v1/staff", tags=["staff: dossiers"])

AUTH = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)
STAFF_AUTH = (*AUTH, core_errors.FORBIDDEN)
BODY = (core_errors.VALIDATION_FAILED, core_errors.MALFORMED_JSON, core_errors.BODY_TOO_LARGE)
CODE = Path(max_length=40, examples=["TNG-PDP-270203-0001"])
DOCUMENT_ERRORS = (
    errors.DOCUMENT_UNKNOWN,
    errors.ATTACHMENT_NOT_FOUND,
    errors.DOCUMENT_TYPE_NOT_ACCEPTED,
    errors.DOCUMENT_TOO_LARGE,
)


def language(request: Request) -> Language:
    return negotiate(request.headers.get("accept-language"))


# ---------------------------------------------------------------- catalogue


@procedures.get(
    "",
    response_model=list[schemas.ProcedureSummary],
    summary="Search the procedure catalogue",
    description="Ignores Vietnamese diacritics and case: `dang ky khai sinh` finds "
    "“Đăng ký khai sinh”. Every word must appear (in the code, name or field).",
)
async def list_procedures(
    session: DbSession, q: Annotated[str | None, Query(max_length=200)] = None
) -> Any:
    return await service.search_procedures(session, q)


@procedures.get(
    "/{code}",
    response_model=schemas.ProcedureOut,
    summary="One procedure: documents, fee, processing time and form schema",
    responses=responses(errors.PROCEDURE_NOT_FOUND),
)
async def get_procedure(session: DbSession, code: Annotated[str, Path(max_length=32)]) -> Any:
    return await service.get_procedure(session, code)


# ---------------------------------------------------------------- citizens


@citizen.post(
    "",
    response_model=schemas.DossierOut,
    status_code=status.HTTP_201_CREATED,
    summary="Submit a dossier",
    description="Requires an `Idempotency-Key` header (8–200 characters, new per dossier): a retry "
    "with the same key and body returns the dossier already created (200, "
    "`Idempotent-Replayed: true`), never a second one.",
    responses=responses(
        *AUTH,
        *BODY,
        errors.PROCEDURE_NOT_FOUND,
        errors.AGENCY_INVALID,
        errors.FORM_INVALID,
        errors.DOCUMENT_MISSING,
        *DOCUMENT_ERRORS,
        errors.IDEMPOTENCY_KEY_REQUIRED,
        errors.IDEMPOTENCY_KEY_INVALID,
        errors.IDEMPOTENCY_KEY_REUSED,
    ),
)
async def submit(
    body: schemas.DossierCreate,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: DbSession,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    dossier, known = await service.submit(session, principal.user, body, idempotency_key)
    if known is None:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return await service.view(session, dossier, language(request), staff=False, known=known)


@citizen.get(
    "",
    response_model=schemas.DossierPage,
    summary="My dossiers, newest first",
    responses=responses(*AUTH, errors.CURSOR_INVALID),
)
async def list_mine(
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 20,
) -> Any:
    return await service.list_mine(session, principal.user, cursor, limit, language(request))


@citizen.get(
    "/{code}",
    response_model=schemas.DossierOut,
    summary="One of my dossiers with its full timeline",
    responses=responses(*AUTH, errors.DOSSIER_NOT_FOUND),
)
async def get_mine(
    code: Annotated[str, CODE], request: Request, principal: CurrentPrincipal, session: DbSession
) -> Any:
    dossier = await service.for_citizen(session, principal.user, code)
    return await service.view(session, dossier, language(request), staff=False)


@citizen.post(
    "/{code}/supplement",
    response_model=schemas.DossierOut,
    summary="Provide what staff asked for; the clock runs again",
    responses=responses(
        *AUTH,
        *BODY,
        errors.DOSSIER_NOT_FOUND,
        errors.INVALID_TRANSITION,
        errors.SUPPLEMENT_EMPTY,
        errors.SUPPLEMENT_PERIOD_EXPIRED,
        errors.FORM_INVALID,
        *DOCUMENT_ERRORS,
    ),
)
async def supplement(
    code: Annotated[str, CODE],
    body: schemas.SupplementIn,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
) -> Any:
    dossier = await service.supplement(session, principal.user, code, body)
    return await service.view(session, dossier, language(request), staff=False)


@citizen.post(
    "/{code}/withdraw",
    response_model=schemas.DossierOut,
    summary="Withdraw a dossier before its result",
    responses=responses(*AUTH, *BODY, errors.DOSSIER_NOT_FOUND, errors.INVALID_TRANSITION),
)
async def withdraw(
    code: Annotated[str, CODE],
    body: schemas.WithdrawIn,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
) -> Any:
    dossier = await service.withdraw(session, principal.user, code, body.reason)
    return await service.view(session, dossier, language(request), staff=False)


@citizen.post(
    "/{code}/rating",
    response_model=schemas.DossierOut,
    summary="Rate the service (1–5) once the result is returned",
    responses=responses(
        *AUTH, *BODY, errors.DOSSIER_NOT_FOUND, errors.INVALID_TRANSITION, errors.ALREADY_RATED
    ),
)
async def rate(
    code: Annotated[str, CODE],
    body: schemas.RatingIn,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
) -> Any:
    dossier = await service.rate(session, principal.user, code, body.score, body.comment)
    return await service.view(session, dossier, language(request), staff=False)


async def _document_stream(session: DbSession, dossier: Any, media_id: uuid.UUID) -> Any:
    linked = (
        await session.execute(
            sa.select(col(DossierDocument.id))
            .where(
                col(DossierDocument.dossier_id) == dossier.id,
                col(DossierDocument.media_id) == media_id,
            )
            .limit(1)
        )
    ).scalar_one_or_none()
    file = await media.get(session, media_id) if linked else None
    if file is None:
        raise AppError(media_errors.MEDIA_NOT_FOUND)
    return StreamingResponse(
        media.content(file),
        media_type=file.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Content-Length": str(file.size_bytes)},
    )


@citizen.get(
    "/{code}/documents/{media_id}",
    summary="A document of my dossier (or its result)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **responses(*AUTH, errors.DOSSIER_NOT_FOUND, media_errors.MEDIA_NOT_FOUND),
    },
)
async def my_document(
    code: Annotated[str, CODE],
    media_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
) -> StreamingResponse:
    dossier = await service.for_citizen(session, principal.user, code)
    return await _document_stream(session, dossier, media_id)


@public.get(
    "/{code}",
    response_model=schemas.PublicStatus,
    summary="Status look-up by dossier code and the last 4 digits of the phone",
    description="No sign-in. Rate limited per IP and per dossier code; a wrong code and "
    "wrong digits get the same 404.",
    responses=responses(
        errors.DOSSIER_NOT_FOUND, core_errors.RATE_LIMITED, core_errors.VALIDATION_FAILED
    ),
)
async def public_status(
    code: Annotated[str, CODE],
    request: Request,
    session: DbSession,
    phone_last4: Annotated[str, Query(pattern=r"^[0-9]{4}$")],
) -> Any:
    return await service.public_lookup(session, code, phone_last4, client_ip(request))


# ---------------------------------------------------------------- staff


@staff.get(
    "/dossiers",
    response_model=schemas.DossierPage,
    summary="The queue of my ward (city admins: every queue), newest first",
    responses=responses(*STAFF_AUTH, errors.CURSOR_INVALID, core_errors.VALIDATION_FAILED),
)
async def staff_list(
    request: Request,
    caller: DirectStaff,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    procedure: Annotated[str | None, Query(max_length=32)] = None,
    assignee: Annotated[uuid.UUID | None, Query()] = None,
    agency: Annotated[str | None, Query(max_length=32, description="City admins")] = None,
    overdue: Annotated[bool | None, Query()] = None,
    submitted_from: Annotated[date | None, Query()] = None,
    submitted_to: Annotated[date | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 20,
) -> Any:
    filters = service.StaffFilters(
        status=[s.value for s in status_] if status_ else None,
        procedure_code=procedure,
        assignee_id=assignee,
        agency_code=agency,
        overdue=overdue,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
    )
    return await service.staff_list(caller, filters, cursor, limit, language(request))


@staff.get(
    "/dossiers/{code}",
    response_model=schemas.StaffDossierOut,
    summary="A dossier of my ward, with the applicant (audited)",
    responses=responses(*STAFF_AUTH, errors.DOSSIER_NOT_FOUND),
)
async def staff_get(
    code: Annotated[str, CODE], request: Request, principal: StaffPrincipal, session: DbSession
) -> Any:
    return await service.staff_read(
        session, principal.user, code, language(request), audit_context(request, principal)
    )


@staff.post(
    "/dossiers/{code}/transitions",
    response_model=schemas.StaffDossierOut,
    summary="Act on a dossier: receive, reject_intake, assign, request_supplement, approve, "
    "reject, return_result, extend, stop",
    description="Which action is allowed in which status is one table in "
    "`app/dossiers/workflow.py`; anything else is 409 `dossier.invalid_transition` with the "
    "allowed actions. Every action is recorded with who, when and why.",
    responses=responses(
        *STAFF_AUTH,
        *BODY,
        errors.DOSSIER_NOT_FOUND,
        errors.INVALID_TRANSITION,
        errors.SUPPLEMENT_ALREADY_REQUESTED,
        errors.TRANSITION_INCOMPLETE,
        errors.ASSIGNEE_INVALID,
        errors.RESULT_DOCUMENT_INVALID,
        errors.DUE_DATE_INVALID,
    ),
)
async def staff_transition(
    code: Annotated[str, CODE],
    body: schemas.TransitionIn,
    request: Request,
    principal: StaffPrincipal,
    session: DbSession,
) -> Any:
    ctx = audit_context(request, principal)
    dossier = await service.transition(session, principal.user, code, body, ctx)
    return await service.view(session, dossier, language(request), staff=True)


@staff.get(
    "/dossiers/{code}/documents/{media_id}",
    summary="A document of a dossier of my ward",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **responses(*STAFF_AUTH, errors.DOSSIER_NOT_FOUND, media_errors.MEDIA_NOT_FOUND),
    },
)
async def staff_document(
    code: Annotated[str, CODE],
    media_id: uuid.UUID,
    request: Request,
    principal: StaffPrincipal,
    session: DbSession,
) -> StreamingResponse:
    dossier = await service.for_staff(session, principal.user, code)
    answer = await _document_stream(session, dossier, media_id)
    await audit.record(
        session,
        audit_context(request, principal),
        "dossiers.staff_document_read",
        subject_id=dossier.citizen_id,
        resource=f"media:{media_id}",
    )
    return answer


@staff.get(
    "/stats/dossiers",
    response_model=schemas.StatsOut,
    summary="Operations-centre statistics by agency and month",
    description="Submitted, received, resolved, on-time rate, average processing working "
    "days and satisfaction. Ward staff see their ward; city admins every agency.",
    responses=responses(*STAFF_AUTH, core_errors.VALIDATION_FAILED),
)
async def staff_stats(
    principal: StaffPrincipal,
    session: DbSession,
    agency: Annotated[str | None, Query(max_length=32)] = None,
    period_from: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", alias="from")] = None,
    period_to: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", alias="to")] = None,
) -> Any:
    rows = await service.stats(
        session, principal.user, agency_code=agency, period_from=period_from, period_to=period_to
    )
    return {"rows": rows}


router.include_router(procedures)
router.include_router(citizen)
router.include_router(public)
router.include_router(staff)
