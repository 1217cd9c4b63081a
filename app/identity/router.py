"""HTTP endpoints of Thai Nguyen ID. Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.admin_units import errors as admin_units_errors
from app.core import errors as core_errors
from app.core import personal_data
from app.core.errors import AppError, responses
from app.identity import duty, errors, schemas, service
from app.identity.dependencies import (
    BEARER_SECURITY,
    OPTIONAL_BEARER_SECURITY,
    CurrentPrincipal,
    DbSession,
    Principal,
    StaffPrincipal,
    audit_context,
    bearer_token,
    client_ip,
    optional_principal,
    session_ended,
)
from app.identity.roles import Role
from app.tokens import errors as token_errors
from app.tokens import service as tokens

router = APIRouter()
auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
me = APIRouter(prefix="/api/v1/me", tags=["me"])
staff = APIRouter(prefix="/api/v1/staff/citizens", tags=["staff: citizens"])
duty_router = APIRouter(prefix="/api/v1/staff/duty", tags=["staff: duty"])

AUTH_ERRORS = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)
BODY_ERRORS = (
    core_errors.VALIDATION_FAILED,
    core_errors.MALFORMED_JSON,
    core_errors.BODY_TOO_LARGE,
)


def no_store(response: Response) -> None:
    """Answers carrying tokens or a whole personal-data export are never cached (RFC 6749 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _tokens(signed_in: service.SignIn) -> schemas.TokenResponse:
    return schemas.TokenResponse(
        access_token=signed_in.access_token,
        expires_in=signed_in.expires_in,
        refresh_token=signed_in.refresh_token,
        session_id=signed_in.session_id,
    )


@auth.post(
    "/refresh",
    response_model=schemas.TokenResponse,
    dependencies=[Depends(no_store)],
    summary="Exchange a refresh token for a new pair (rotation)",
    description="Each refresh token works once. Presenting a used one revokes the whole session.",
    responses=responses(
        token_errors.REFRESH_INVALID,
        token_errors.REFRESH_REUSED,
        errors.ACCOUNT_DISABLED,
        *BODY_ERRORS,
    ),
)
async def refresh(body: schemas.RefreshRequest, request: Request) -> Any:
    return _tokens(await service.refresh(body.refresh_token, client_ip(request)))


@auth.post(
    "/otp",
    response_model=schemas.OtpSent,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a 6-digit code by SMS",
    description="The same answer whether or not the number has an account. Codes live 5 minutes, "
    "allow 5 attempts, and a new one may be asked for after 60 seconds.",
    responses=responses(
        errors.INVALID_PHONE, errors.OTP_RESEND_TOO_SOON, core_errors.RATE_LIMITED, *BODY_ERRORS
    ),
)
async def request_otp(body: schemas.OtpRequest, request: Request, session: DbSession) -> Any:
    return await service.send_otp(session, body.phone, body.purpose, client_ip(request))


@auth.post(
    "/register",
    response_model=schemas.TokenResponse | schemas.AssistedRegistration,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(no_store)],
    summary="Create a Thai Nguyen ID with the SMS code, and sign in",
    description="A community helper may call this with their own token to register a citizen; "
    "the citizen's own code is still required, and the answer then opens no session: the "
    "citizen signs in on their own device.",
    responses=responses(
        errors.INVALID_PHONE,
        errors.PHONE_TAKEN,
        errors.WEAK_PASSWORD,
        errors.OTP_INVALID,
        errors.OTP_EXPIRED,
        errors.OTP_TOO_MANY_ATTEMPTS,
        core_errors.RATE_LIMITED,
        core_errors.FORBIDDEN,
        *BODY_ERRORS,
    ),
    openapi_extra=OPTIONAL_BEARER_SECURITY,
)
async def register(
    body: schemas.RegisterRequest,
    request: Request,
    session: DbSession,
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> schemas.TokenResponse | schemas.AssistedRegistration:
    helper = None
    if principal is not None:
        if principal.role != Role.COMMUNITY_HELPER:
            raise AppError(core_errors.FORBIDDEN)
        helper = principal.user
    signed_in = await service.register(
        session,
        phone_raw=body.phone,
        otp=body.otp,
        password=body.password,
        full_name=body.full_name,
        locale=body.locale,
        device_name=body.device_name,
        user_agent=request.headers.get("user-agent"),
        ctx=audit_context(request, principal),
        helper=helper,
    )
    if signed_in is None:
        return schemas.AssistedRegistration()
    return _tokens(signed_in)


@auth.post(
    "/login",
    response_model=schemas.TokenResponse,
    summary="Sign in with phone and password",
    dependencies=[Depends(no_store)],
    responses=responses(
        errors.INVALID_CREDENTIALS,
        errors.ACCOUNT_LOCKED,
        errors.ACCOUNT_DISABLED,
        core_errors.RATE_LIMITED,
        *BODY_ERRORS,
    ),
)
async def login(body: schemas.LoginRequest, request: Request, session: DbSession) -> Any:
    signed_in = await service.login(
        session,
        phone_raw=body.phone,
        password=body.password,
        device_name=body.device_name,
        user_agent=request.headers.get("user-agent"),
        ctx=audit_context(request),
    )
    return _tokens(signed_in)


@auth.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the current session",
    responses=responses(*AUTH_ERRORS),
)
async def logout(principal: CurrentPrincipal, session: DbSession) -> Response:
    await service.logout(session, principal.user, principal.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.post(
    "/password-reset",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with an SMS code; ends every session",
    responses=responses(
        errors.INVALID_PHONE,
        errors.WEAK_PASSWORD,
        errors.OTP_INVALID,
        errors.OTP_EXPIRED,
        errors.OTP_TOO_MANY_ATTEMPTS,
        *BODY_ERRORS,
    ),
)
async def password_reset(
    body: schemas.PasswordResetRequest, request: Request, session: DbSession
) -> Response:
    await service.reset_password(
        session,
        phone_raw=body.phone,
        otp=body.otp,
        new_password=body.new_password,
        ctx=audit_context(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.get(
    "",
    response_model=schemas.ProfileOut,
    summary="My profile",
    responses=responses(*AUTH_ERRORS),
    openapi_extra=BEARER_SECURITY,
)
async def get_me(request: Request) -> Any:
    # The bearer check is called, not declared as a dependency: on the app's most frequent
    # request FastAPI's resolution of a dependency costs more than the check itself.
    caller = await bearer_token(request)
    profile = await service.my_profile(caller.user_id, caller.session_id)
    if profile is None:
        raise session_ended()
    return profile


@me.patch(
    "",
    response_model=schemas.ProfileOut,
    summary="Change my profile",
    responses=responses(
        *AUTH_ERRORS, *BODY_ERRORS, errors.ROLE_INVALID, admin_units_errors.WARD_NOT_FOUND
    ),
)
async def patch_me(
    body: schemas.ProfilePatch, principal: CurrentPrincipal, session: DbSession, request: Request
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("full_name", "") is None or changes.get("locale", "") is None:
        raise AppError(core_errors.VALIDATION_FAILED)
    user = await service.update_profile(
        session, principal.user, changes, audit_context(request, principal)
    )
    return await service.profile_view(session, user, owner=True)


@me.put(
    "/identity",
    response_model=schemas.ProfileOut,
    summary="Declare my identity (CCCD); reaches identity level 1",
    responses=responses(
        *AUTH_ERRORS, *BODY_ERRORS, errors.INVALID_CCCD, errors.CCCD_TAKEN, core_errors.RATE_LIMITED
    ),
)
async def put_identity(
    body: schemas.IdentityIn, principal: CurrentPrincipal, session: DbSession, request: Request
) -> Any:
    user = await service.declare_identity(
        session,
        principal.user,
        cccd=body.cccd,
        full_name=body.full_name,
        date_of_birth=body.date_of_birth,
        gender=body.gender,
        ctx=audit_context(request, principal),
    )
    return await service.profile_view(session, user, owner=True)


@me.get(
    "/sessions",
    response_model=list[schemas.SessionOut],
    summary="My signed-in devices",
    responses=responses(*AUTH_ERRORS),
)
async def list_sessions(principal: CurrentPrincipal, session: DbSession) -> Any:
    rows = await tokens.list_active_sessions(session, principal.user.id)
    return [{**row.model_dump(), "current": row.id == principal.session_id} for row in rows]


@me.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out one device",
    responses=responses(*AUTH_ERRORS, token_errors.SESSION_NOT_FOUND),
)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> Response:
    target = await tokens.active_session(session, session_id)
    if target is None or target.user_id != principal.user.id:
        raise AppError(token_errors.SESSION_NOT_FOUND)
    await service.end_session(session, session_id, reason="revoked_by_user")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.get(
    "/export",
    summary="Everything held about me, as JSON (Law 91/2025)",
    responses=responses(*AUTH_ERRORS),
    dependencies=[Depends(no_store)],
)
async def export_me(principal: CurrentPrincipal, session: DbSession, request: Request) -> Any:
    from app.core import audit

    data = await personal_data.export_all(session, principal.user.id)
    await audit.record(
        session,
        audit_context(request, principal),
        "identity.exported",
        subject_id=principal.user.id,
    )
    return {"format": "thainguyen-id-export/1", "user_id": str(principal.user.id), **data}


@me.delete(
    "",
    response_model=schemas.DeletionReport,
    summary="Erase my account",
    description="Needs the password. What the law requires us to keep is kept apart and listed "
    "in the answer.",
    responses=responses(
        *AUTH_ERRORS, *BODY_ERRORS, errors.WRONG_PASSWORD, errors.CANNOT_DELETE_STAFF
    ),
)
async def delete_me(
    body: schemas.DeleteAccountRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    erased, retained = await service.delete_account(
        session, principal.user, body.password, audit_context(request, principal)
    )
    return {"deleted": True, "erased": erased, "retained": [r.__dict__ for r in retained]}


REASON = Annotated[
    str,
    Query(min_length=3, max_length=500, description="Why this citizen's data is read (audit log)"),
]


@staff.get(
    "",
    response_model=schemas.CitizenOut,
    summary="Find a citizen of my ward by phone",
    responses=responses(
        *AUTH_ERRORS, core_errors.FORBIDDEN, errors.USER_NOT_FOUND, errors.INVALID_PHONE
    ),
)
async def find_citizen(
    phone: Annotated[str, Query(max_length=32)],
    reason: REASON,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    return await service.staff_find_citizen(
        session, principal.user, phone, reason, audit_context(request, principal)
    )


@staff.get(
    "/{citizen_id}",
    response_model=schemas.CitizenOut,
    summary="Read a citizen of my ward",
    responses=responses(*AUTH_ERRORS, core_errors.FORBIDDEN, errors.USER_NOT_FOUND),
)
async def read_citizen(
    citizen_id: uuid.UUID,
    reason: REASON,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    return await service.staff_read_citizen(
        session, principal.user, citizen_id, reason, audit_context(request, principal)
    )


@staff.post(
    "/{citizen_id}/verifications",
    response_model=schemas.VerificationOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record an in-person identity check (level 2)",
    responses=responses(
        *AUTH_ERRORS,
        core_errors.FORBIDDEN,
        errors.USER_NOT_FOUND,
        errors.IDENTITY_REQUIRED,
        errors.DOCUMENT_MISMATCH,
        errors.INVALID_CCCD,
        errors.CCCD_VERIFIED_ELSEWHERE,
        *BODY_ERRORS,
    ),
)
async def verify_citizen(
    citizen_id: uuid.UUID,
    body: schemas.VerifyIdentityIn,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    verification = await service.verify_in_person(
        session,
        principal.user,
        citizen_id,
        document_kind=body.document_kind,
        cccd=body.cccd,
        note=body.note,
        ctx=audit_context(request, principal),
        document=service.DocumentIdentity(**body.document.model_dump()) if body.document else None,
    )
    return verification.model_dump()


@staff.post(
    "/{citizen_id}/verifications/revoke",
    response_model=schemas.CitizenOut,
    summary="Revoke a level 2 verification, with a reason",
    responses=responses(
        *AUTH_ERRORS,
        core_errors.FORBIDDEN,
        errors.USER_NOT_FOUND,
        errors.VERIFICATION_NOT_FOUND,
        *BODY_ERRORS,
    ),
)
async def revoke_verification(
    citizen_id: uuid.UUID,
    body: schemas.RevokeVerificationIn,
    principal: StaffPrincipal,
    session: DbSession,
    request: Request,
) -> Any:
    citizen = await service.revoke_verification(
        session,
        principal.user,
        citizen_id,
        reason=body.reason,
        ctx=audit_context(request, principal),
    )
    return await service.profile_view(session, citizen, owner=False)


DUTY = (
    "Urgent notices of a ward (a camera's alert, a camera gone silent) go to its staff on "
    "duty, or to all its staff while nobody is."
)


@duty_router.get(
    "",
    response_model=schemas.DutyOut,
    summary="My duty shift and my ward's",
    description=DUTY,
    responses=responses(*AUTH_ERRORS, core_errors.FORBIDDEN),
)
async def get_duty(principal: StaffPrincipal, session: DbSession) -> Any:
    return await duty.view(session, principal.user)


@duty_router.put(
    "",
    response_model=schemas.DutyOut,
    summary="Go on duty (or change when my shift ends)",
    description=DUTY,
    responses=responses(*AUTH_ERRORS, core_errors.FORBIDDEN, errors.NOT_WARD_STAFF, *BODY_ERRORS),
)
async def start_duty(body: schemas.DutyIn, principal: StaffPrincipal, session: DbSession) -> Any:
    await duty.start(session, principal.user, body.hours)
    return await duty.view(session, principal.user)


@duty_router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Go off duty",
    description=DUTY,
    responses=responses(*AUTH_ERRORS, core_errors.FORBIDDEN),
)
async def end_duty(principal: StaffPrincipal, session: DbSession) -> Response:
    await duty.end(session, principal.user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


router.include_router(me)  # GET /api/v1/me is its first route: the app's most frequent request
router.include_router(auth)
router.include_router(staff)
router.include_router(duty_router)
