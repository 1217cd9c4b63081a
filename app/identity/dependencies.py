"""Who is calling: bearer-token authentication, roles, and the audit context of a request."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.audit import AuditContext
from app.core.db import DbSession, Direct
from app.core.errors import FORBIDDEN, TOKEN_INVALID, UNAUTHENTICATED, AppError
from app.core.tables import table_of
from app.identity.models import User, signed_in_account
from app.identity.roles import STAFF_ROLES, Role
from app.tokens import service as tokens

bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")


@dataclass(frozen=True)
class Principal:
    user: User
    session_id: uuid.UUID
    scope: str

    @property
    def role(self) -> Role:
        return Role(self.user.role)


def client_ip(request: Request) -> str | None:
    # Behind a proxy, uvicorn's --proxy-headers/--forwarded-allow-ips sets request.client.
    return request.client.host if request.client else None


# Built once: constructing and cache-keying the statement per request costs more than running it.
_SIGNED_IN, _SIGNED_IN_CONDITIONS = signed_in_account()
_PRINCIPAL_QUERY = sa.select(User).select_from(_SIGNED_IN).where(*_SIGNED_IN_CONDITIONS)


@dataclass(frozen=True)
class BearerToken:
    """A signature-checked first-party access token; whether its session lives is not known yet."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    scope: str


async def _bearer_token(
    session: AsyncSession | None, credentials: HTTPAuthorizationCredentials | None
) -> BearerToken:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AppError(UNAUTHENTICATED, headers={"WWW-Authenticate": 'Bearer realm="thainguyen"'})
    claims = await tokens.verify_access_token(session, credentials.credentials)
    try:
        return BearerToken(uuid.UUID(claims.sub), uuid.UUID(claims.sid or ""), claims.scope)
    except ValueError:
        raise AppError(TOKEN_INVALID) from None


class _SignedBearer(HTTPBearer):
    """The bearer scheme that also checks the token's signature, for read paths that check the
    session themselves, in the same query as their data (`GET /api/v1/me`): no ORM session, no
    transaction. One dependency where a scheme and a checker would be two: FastAPI resolves each
    level on every request, and these are the app's most frequent requests."""

    async def __call__(self, request: Request) -> BearerToken:  # type: ignore[override]
        return await _bearer_token(None, await super().__call__(request))


# Documented as the same scheme as `bearer` (OpenAPI names a scheme by its class otherwise).
bearer_token = _SignedBearer(
    auto_error=False, description=bearer.model.description, scheme_name=bearer.scheme_name
)
CurrentBearer = Annotated[BearerToken, Depends(bearer_token)]
# For an endpoint that calls `bearer_token` itself: documents the scheme as the dependency would.
BEARER_SECURITY: dict[str, Any] = {"security": [{bearer.scheme_name: []}]}
# Routes that serve anyone and more to a signed-in caller: the token is optional.
OPTIONAL_BEARER_SECURITY: dict[str, Any] = {"security": [{bearer.scheme_name: []}, {}]}


def session_ended() -> AppError:
    """A well-signed token whose session was revoked or expired, or whose account is gone."""
    return AppError(TOKEN_INVALID, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def _authenticate(
    session: AsyncSession, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    token = await _bearer_token(session, credentials)
    # One query: the account, only if the session behind the token is still alive.
    row = (
        await session.execute(
            _PRINCIPAL_QUERY,
            {"user_id": token.user_id, "session_id": token.session_id, "now": clock.now()},
        )
    ).scalar_one_or_none()
    if row is None:
        raise session_ended()
    return Principal(user=row, session_id=token.session_id, scope=token.scope)


async def current_principal(
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await _authenticate(session, credentials)


async def optional_principal(
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    return None if credentials is None else await _authenticate(session, credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise AppError(FORBIDDEN)
        return principal

    return check


StaffPrincipal = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]


def audit_context(request: Request, principal: Principal | None = None) -> AuditContext:
    return AuditContext(
        actor_id=principal.user.id if principal else None,
        actor_role=principal.user.role if principal else None,
        ip=client_ip(request),
        request_id=getattr(request.state, "request_id", None),
    )


@dataclass(frozen=True)
class StaffCaller:
    """A staff member as the hot read paths need them: no ORM object, no session."""

    user_id: uuid.UUID
    role: str
    ward_code: str | None


# The caller's role and ward, only while the session behind the token lives (as
# `_PRINCIPAL_QUERY`), on the driver's connection: one round trip, no transaction.
_CALLER_SCOPE = Direct(
    sa.select(table_of(User).c.role, table_of(User).c.ward_code)
    .select_from(_SIGNED_IN)
    .where(*_SIGNED_IN_CONDITIONS)
)


async def direct_staff(caller: CurrentBearer) -> StaffCaller:
    """Staff for read paths that need no session (the dossier queue): 401 when the session has
    ended, 403 for other roles, as `StaffPrincipal`."""
    row = await _CALLER_SCOPE.fetch_one(
        {"user_id": caller.user_id, "session_id": caller.session_id, "now": clock.now()}
    )
    if row is None:
        raise session_ended()
    if row["role"] not in STAFF_ROLES:
        raise AppError(FORBIDDEN)
    return StaffCaller(caller.user_id, row["role"], row["ward_code"])


DirectStaff = Annotated[StaffCaller, Depends(direct_staff)]
