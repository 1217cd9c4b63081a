"""The rules of the OpenID Connect provider that are ours rather than authlib's: browser sign-in,
authorization requests kept across pages (and PAR), codes, consent, subjects and claims, tokens
(through `app.tokens`), revocation, introspection and logout. Services flush, never commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.admin_units import service as admin_units
from app.core import audit, clock, jobs
from app.core.audit import AuditContext
from app.core.config import get_settings
from app.core.db import new_id
from app.core.errors import AppError
from app.core.security import keyed_hash, random_token
from app.core.tables import rows_matched
from app.identity import service as identity
from app.identity.models import User
from app.oauth import errors, revocations
from app.oauth.clients import client_view
from app.oauth.config import get_oauth_settings
from app.oauth.models import (
    AuthorizationCode,
    AuthorizationRequest,
    ClientSession,
    Consent,
    OAuthClient,
    RevokedAccessToken,
)
from app.tokens import service as tokens
from app.tokens.errors import REFRESH_REUSED
from app.tokens.keys import key_store

if TYPE_CHECKING:
    from app.tokens.models import AuthSession

BROWSER_CLIENT = "op:browser"  # the client_id of browser sign-ins at the provider itself
ID_TOKEN_ALGS = ("RS256", "ES256")  # RS256 unless the client registered ES256
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
ACR_PREFIX = "urn:thainguyen:id:loa:"
BACKCHANNEL_LOGOUT = "oauth.backchannel_logout"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def acr_for(level: int) -> str:
    return f"{ACR_PREFIX}{level}"


def level_of(acr: str) -> int | None:
    if acr.startswith(ACR_PREFIX) and acr[len(ACR_PREFIX) :] in {"0", "1", "2"}:
        return int(acr[len(ACR_PREFIX) :])
    return None


def current_acr(acr: str | None, level_now: int) -> str:
    """A family's acr as it stands now: never above the account's current identity level."""
    started = level_of(acr or "")
    return acr_for(min(started if started is not None else 0, level_now))


def required_level(client: OAuthClient, acr_values: str | None) -> int:
    """The client's minimum, raised by the lowest level the request says it accepts."""
    asked = [lv for lv in (level_of(a) for a in (acr_values or "").split()) if lv is not None]
    return max(client.min_loa, min(asked) if asked else 0)


# ---------------------------------------------------------------- browser sign-in at the provider


async def browser_session(db: AsyncSession, cookie: str | None) -> AuthSession | None:
    if not cookie:
        return None
    row = await tokens.find_session_by_refresh_token(db, cookie)
    if (
        row is None
        or row.client_id != BROWSER_CLIENT
        or row.revoked_at is not None
        or row.expires_at <= clock.now()
    ):
        return None
    return row


async def sign_in(
    db: AsyncSession,
    *,
    phone: str,
    password: str,
    user_agent: str | None,
    ctx: AuditContext,
    client_id: str | None,
    previous: AuthSession | None = None,
) -> tuple[User, AuthSession, str]:
    """Password sign-in with the app login's brute-force protection; opens a browser session.

    A new cookie each time (no session fixation); the browser's previous sign-in ends, and the
    partner sessions it opened move to the new one, so a later logout still reaches them."""
    user = await identity.authenticate(db, phone_raw=phone, password=password, ctx=ctx)
    session, cookie = await tokens.start_session(
        db,
        user_id=user.id,
        client_id=BROWSER_CLIENT,
        device_name="Trình duyệt / Browser",
        user_agent=user_agent,
        ip=ctx.ip,
        acr=acr_for(user.identity_level),
    )
    session.expires_at = clock.now() + timedelta(days=get_oauth_settings().browser_session_days)
    await db.flush()
    if previous is not None:
        if previous.user_id == user.id:
            await db.execute(
                sa.update(ClientSession)
                .where(col(ClientSession.browser_session_id) == previous.id)
                .values(browser_session_id=session.id)
            )
        await tokens.revoke_session(db, previous.id, reason="signed_in_again")
    await audit.record(
        db,
        _as(ctx, user),
        "oauth.sign_in",
        subject_id=user.id,
        details={"client_id": client_id, "browser_session_id": str(session.id)},
    )
    return user, session, cookie


def _as(ctx: AuditContext, user: User) -> AuditContext:
    return AuditContext(
        actor_id=user.id, actor_role=user.role, ip=ctx.ip, request_id=ctx.request_id
    )


# ---------------------------------------------------------------- authorization requests (+ PAR)


def _request_key(handle: str) -> str:
    return keyed_hash(handle, purpose="oauth-request")[:64]


async def save_request(
    db: AsyncSession, client_id: str, params: dict[str, Any], *, pushed: bool
) -> tuple[str, int]:
    """Keep an authorization request; return its `request_uri` and lifetime in seconds."""
    ttl = 90 if pushed else get_oauth_settings().request_ttl_seconds
    handle = random_token("", 32)
    now = clock.now()
    clean = {k: v for k, v in params.items() if k not in {"request_uri", "client_secret"}}
    db.add(
        AuthorizationRequest(
            id=_request_key(handle),
            client_id=client_id,
            params=clean,
            pushed=pushed,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    await db.flush()
    return REQUEST_URI_PREFIX + handle, ttl


async def load_request(
    db: AsyncSession, request_uri: str, client_id: str | None, *, any_client: bool = False
) -> AuthorizationRequest | None:
    if not request_uri.startswith(REQUEST_URI_PREFIX):
        return None
    row = await db.get(AuthorizationRequest, _request_key(request_uri[len(REQUEST_URI_PREFIX) :]))
    if (
        row is None
        or row.used_at is not None
        or row.expires_at <= clock.now()
        or (not any_client and row.client_id != client_id)
    ):
        return None
    if row.pushed:
        # A pushed request lives 90 s for the redirect; once the citizen is on our pages it
        # may take as long as any interactive request.
        row.expires_at = max(
            row.expires_at,
            row.created_at + timedelta(seconds=get_oauth_settings().request_ttl_seconds),
        )
    return row


async def finish_request(db: AsyncSession, request_id: str) -> bool:
    """Spend a stored request: True for the one caller that spent it. One statement, so of
    concurrent uses of one `request_uri` (two tabs, a replay, two server processes) exactly one
    goes on to a code: on PostgreSQL the others wait for its row lock, then find it used."""
    result = await db.execute(
        sa.update(AuthorizationRequest)
        .where(
            col(AuthorizationRequest.id) == request_id, col(AuthorizationRequest.used_at).is_(None)
        )
        .values(used_at=clock.now())
    )
    return rows_matched(result) == 1


# ---------------------------------------------------------------- consent


def scope_set(scope: str | None) -> set[str]:
    return set((scope or "").split())


async def consent_covers(
    db: AsyncSession,
    user_id: uuid.UUID,
    client_id: str,
    scopes: set[str],
    since: datetime | None = None,
) -> bool:
    row = (
        await db.execute(
            sa.select(Consent).where(
                col(Consent.user_id) == user_id,
                col(Consent.client_id) == client_id,
                col(Consent.revoked_at).is_(None),
            )
        )
    ).scalar_one_or_none()
    if row is None or not scopes <= scope_set(row.scope):
        return False
    return since is None or row.granted_at >= since


async def grant_consent(
    db: AsyncSession, user: User, client_id: str, scopes: set[str], ctx: AuditContext
) -> None:
    row = (
        await db.execute(
            sa.select(Consent).where(
                col(Consent.user_id) == user.id, col(Consent.client_id) == client_id
            )
        )
    ).scalar_one_or_none()
    now = clock.now()
    if row is None:
        db.add(
            Consent(
                user_id=user.id, client_id=client_id, scope=" ".join(sorted(scopes)), granted_at=now
            )
        )
    else:
        kept = scope_set(row.scope) if row.revoked_at is None else set()
        row.scope, row.granted_at, row.revoked_at = " ".join(sorted(kept | scopes)), now, None
    await db.flush()
    await audit.record(
        db,
        _as(ctx, user),
        "oauth.consent_granted",
        subject_id=user.id,
        resource=f"oauth_client:{client_id}",
        details={"scope": " ".join(sorted(scopes))},
    )


async def list_apps(db: AsyncSession, user_id: uuid.UUID) -> list[tuple[Consent, OAuthClient]]:
    rows = await db.execute(
        sa.select(Consent, OAuthClient)
        .join(OAuthClient, col(OAuthClient.id) == col(Consent.client_id))
        .where(col(Consent.user_id) == user_id, col(Consent.revoked_at).is_(None))
        .order_by(col(Consent.granted_at).desc())
    )
    return [(c, o) for c, o in rows.all()]


async def revoke_app(db: AsyncSession, user: User, client_id: str, ctx: AuditContext) -> None:
    """Withdraw consent and end every token family of the client for this citizen."""
    result = await db.execute(
        sa.update(Consent)
        .where(
            col(Consent.user_id) == user.id,
            col(Consent.client_id) == client_id,
            col(Consent.revoked_at).is_(None),
        )
        .values(revoked_at=clock.now())
    )
    if not rows_matched(result):
        raise AppError(errors.APP_NOT_FOUND)
    links = (
        (
            await db.execute(
                sa.select(ClientSession).where(
                    col(ClientSession.user_id) == user.id, col(ClientSession.client_id) == client_id
                )
            )
        )
        .scalars()
        .all()
    )
    await _end_client_sessions(db, list(links), reason="consent_revoked")
    await audit.record(
        db,
        _as(ctx, user),
        "oauth.consent_revoked",
        subject_id=user.id,
        resource=f"oauth_client:{client_id}",
    )


# ---------------------------------------------------------------- subjects and claims


def subject_for(client: OAuthClient, user_id: uuid.UUID) -> str:
    """Public `sub` (the account id) for first-party clients; otherwise pairwise per sector, so
    partners cannot join their records on it."""
    if client.first_party:
        return str(user_id)
    return keyed_hash(f"{client.sector_identifier}:{user_id}", purpose="pairwise-sub")[:43]


async def claims_for(
    db: AsyncSession, user: User, client: OAuthClient, scope: str
) -> dict[str, Any]:
    scopes = scope_set(scope)
    claims: dict[str, Any] = {"sub": subject_for(client, user.id)}
    ident = await identity.get_identity(db, user.id)
    if "profile" in scopes:
        claims["name"] = ident.full_name if ident else user.full_name
        if ident:
            claims["birthdate"] = ident.date_of_birth.isoformat()
            claims["gender"] = ident.gender
        claims["locale"] = user.locale
        claims["updated_at"] = int(user.updated_at.timestamp())
    if "phone" in scopes and user.phone:
        claims["phone_number"] = user.phone
        claims["phone_number_verified"] = True
    if "address" in scopes and user.ward_code:
        ward = await admin_units.find_unit(db, user.ward_code)
        province = (
            await admin_units.find_unit(db, ward.parent_code) if ward and ward.parent_code else None
        )
        if ward:
            claims["address"] = {
                "locality": ward.name,
                "region": province.name if province else "Thái Nguyên",
                "country": "VN",
                "formatted": f"{ward.name}, {province.name if province else 'Thái Nguyên'}",
            }
    # Only a CCCD that staff checked in person (level 2): a declared one may be someone else's.
    if "cccd" in scopes and client.allow_cccd and user.identity_level >= 2 and ident:
        claims["cccd"] = identity.identity_view(ident, owner=True)["cccd"]
    return claims


OFFLINE_ACCESS = "offline_access"


def offline_granted(scope: str) -> bool:
    """Whether a grant allows a refresh token (OpenID Connect Core 11): only with the
    `offline_access` scope, which the client must be registered for and the citizen must have
    consented to on the consent page (first-party clients of the city need no consent page).
    Without it a partner's access ends with the access token (its family stays, unreachable,
    until it expires, is revoked or the citizen signs out)."""
    return OFFLINE_ACCESS in scope_set(scope)


# ---------------------------------------------------------------- codes


@dataclass
class Grantee:
    """Who authorized, as authlib carries it from the authorize step to the token."""

    user_id: uuid.UUID
    browser_session_id: uuid.UUID | None = None
    auth_time: datetime | None = None
    acr: str = acr_for(0)
    required_loa: int = 0  # what the client required (min_loa, acr_values) at authorization
    code: AuthorizationCode | None = None
    refresh_token: str | None = None
    session: AuthSession | None = None
    dpop_jkt: str | None = None  # the key a refresh token family is bound to (DPoP)
    extra: dict[str, Any] = field(default_factory=dict)

    def get_user_id(self) -> uuid.UUID:
        return self.user_id


def _code_hash(code: str) -> str:
    return keyed_hash(code, purpose="oauth-code")


async def save_code(
    db: AsyncSession,
    code: str,
    *,
    client_id: str,
    grantee: Grantee,
    redirect_uri: str,
    scope: str,
    params: dict[str, Any],
) -> None:
    now = clock.now()
    db.add(
        AuthorizationCode(
            code_hash=_code_hash(code),
            client_id=client_id,
            user_id=grantee.user_id,
            browser_session_id=grantee.browser_session_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=params.get("nonce"),
            code_challenge=params["code_challenge"],
            code_challenge_method="S256",
            acr=grantee.acr,
            auth_time=grantee.auth_time or now,
            dpop_jkt=params.get("dpop_jkt"),
            required_loa=grantee.required_loa,
            created_at=now,
            expires_at=now + timedelta(seconds=get_oauth_settings().code_ttl_seconds),
        )
    )
    await db.flush()


async def find_code(
    db: AsyncSession, code: str, client_id: str, ctx: AuditContext
) -> tuple[AuthorizationCode | None, bool]:
    """The unused, unexpired code; on reuse, revoke what it issued. Returns (code, revoked)."""
    row = (
        await db.execute(
            sa.select(AuthorizationCode).where(
                col(AuthorizationCode.code_hash) == _code_hash(code),
                col(AuthorizationCode.client_id) == client_id,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None, False
    if row.used_at is not None:
        if row.issued_session_id is not None:
            links = (
                (
                    await db.execute(
                        sa.select(ClientSession).where(
                            col(ClientSession.auth_session_id) == row.issued_session_id
                        )
                    )
                )
                .scalars()
                .all()
            )
            await _end_client_sessions(db, list(links), reason="code_reuse", notify=False)
            await audit.record(
                db,
                ctx,
                "oauth.token_revoked",
                subject_id=row.user_id,
                resource=f"oauth_client:{client_id}",
                details={
                    "reason": "authorization_code_reuse",
                    "session_id": str(row.issued_session_id),
                },
            )
        return None, True
    if row.expires_at <= clock.now():
        return None, False
    return row, False


async def read_code(
    db: AsyncSession, code: str, client_id: str, ctx: AuditContext
) -> tuple[AuthorizationCode | None, bool, User | None]:
    """`find_code`, with the account behind the code as it is now (None: no longer active)."""
    row, revoked = await find_code(db, code, client_id, ctx)
    user = await identity.get_active_user(db, row.user_id) if row is not None else None
    return row, revoked, user


async def spend_code(db: AsyncSession, row: AuthorizationCode) -> bool:
    """Atomic: of two concurrent exchanges of one code, exactly one wins."""
    result = await db.execute(
        sa.update(AuthorizationCode)
        .where(col(AuthorizationCode.id) == row.id, col(AuthorizationCode.used_at).is_(None))
        .values(used_at=clock.now())
    )
    return rows_matched(result) == 1


# ---------------------------------------------------------------- tokens


class GrantRefused(Exception):
    """Maps to `invalid_grant`; `commit` keeps what was written (a revoked family)."""

    def __init__(self, description: str, *, commit: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.commit = commit


def make_id_token(
    client: OAuthClient,
    *,
    sub: str,
    auth_time: datetime,
    acr: str,
    sid: str,
    nonce: str | None = None,
    access_token: str | None = None,
) -> str:
    settings = get_settings()
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": sub,
        "aud": client.id,
        "azp": client.id,
        "iat": now,
        "exp": now + get_oauth_settings().id_token_ttl_seconds,
        "auth_time": int(auth_time.timestamp()),
        "acr": acr,
        "amr": ["pwd"],
        "sid": sid,
    }
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        digest = hashlib.sha256(access_token.encode()).digest()
        from base64 import urlsafe_b64encode

        claims["at_hash"] = urlsafe_b64encode(digest[:16]).decode().rstrip("=")
    return _sign(client, claims, typ="JWT")


def _sign(client: OAuthClient, claims: dict[str, Any], *, typ: str) -> str:
    alg = client.id_token_alg if client.id_token_alg in ID_TOKEN_ALGS else "RS256"
    kid, key = key_store.signing_key(alg)
    # The alg comes from a fixed list, also passed as `algorithms`: `none` is never produced.
    return jwt.encode({"alg": alg, "kid": kid, "typ": typ}, claims, key, algorithms=[alg])


def _access_token(
    client: OAuthClient,
    *,
    sub: str,
    session_id: uuid.UUID | None,
    scope: str,
    acr: str | None,
    jkt: str | None,
) -> tuple[str, int]:
    settings = get_settings()
    extra: dict[str, Any] = {}
    if acr:
        extra["acr"] = acr
    if jkt:
        extra["cnf"] = {"jkt": jkt}
    return tokens.issue_access_token(
        subject=sub,
        session_id=session_id,
        scope=scope,
        client_id=client.id,
        audience=settings.issuer,
        extra_claims=extra,
        ttl_seconds=get_oauth_settings().access_token_ttl_seconds,
    )


def _token_answer(access: str, ttl: int, scope: str, jkt: str | None) -> dict[str, Any]:
    return {
        "access_token": access,
        "token_type": "DPoP" if jkt else "Bearer",
        "expires_in": ttl,
        "scope": scope,
    }


@dataclass(frozen=True)
class CodeIssue:
    """The session an authorization code's answer announces, stored by `commit_code`."""

    session_id: uuid.UUID
    refresh_token: str
    acr: str


def code_answer(
    client: OAuthClient,
    grantee: Grantee,
    user: User | None,
    *,
    include_refresh: bool,
    jkt: str | None,
) -> tuple[dict[str, Any], CodeIssue]:
    """The token response for an authorization code, signed without touching the database; the
    code is spent and its session stored by `commit_code` before the answer leaves."""
    code = grantee.code
    assert code is not None
    if code.dpop_jkt and code.dpop_jkt != jkt:
        raise GrantRefused("The DPoP key is not the one the authorization was bound to.")
    if client.require_dpop and not jkt:
        raise GrantRefused("This client must use DPoP.")
    if user is None:
        raise GrantRefused("The account is no longer active.")
    if user.identity_level < code.required_loa:
        raise GrantRefused("The account no longer has the identity level this client requires.")
    issue = CodeIssue(
        new_id(), tokens.new_refresh_token(), current_acr(code.acr, user.identity_level)
    )  # the level may have fallen
    sub = subject_for(client, user.id)
    access, ttl = _access_token(
        client, sub=sub, session_id=issue.session_id, scope=code.scope, acr=issue.acr, jkt=jkt
    )
    answer = _token_answer(access, ttl, code.scope, jkt)
    if "openid" in scope_set(code.scope):
        answer["id_token"] = make_id_token(
            client,
            sub=sub,
            auth_time=code.auth_time,
            acr=issue.acr,
            sid=str(issue.session_id),
            nonce=code.nonce,
            access_token=access,
        )
    if include_refresh and offline_granted(code.scope):
        answer["refresh_token"] = issue.refresh_token
    return answer, issue


async def commit_code(
    db: AsyncSession,
    client: OAuthClient,
    grantee: Grantee,
    user: User,
    issue: CodeIssue,
    *,
    jkt: str | None,
    ctx: AuditContext,
    user_agent: str | None,
) -> None:
    """Spend the code (atomically: of two concurrent exchanges exactly one wins) and store the
    session and its audit entry that `code_answer` announced."""
    code = grantee.code
    assert code is not None
    if not await spend_code(db, code):
        raise GrantRefused("The code was already used.")
    auth_session, _ = await tokens.start_session(
        db,
        user_id=user.id,
        client_id=client.id,
        scope=code.scope,
        acr=issue.acr,
        auth_time=code.auth_time,
        ip=ctx.ip,
        user_agent=user_agent,
        device_name=client.name[:200],
        session_id=issue.session_id,
        refresh_token=issue.refresh_token,
    )
    db.add(
        ClientSession(
            auth_session_id=auth_session.id,
            client_id=client.id,
            user_id=user.id,
            browser_session_id=code.browser_session_id,
            dpop_jkt=jkt,
            required_loa=code.required_loa,
        )
    )
    await db.execute(
        sa.update(AuthorizationCode)
        .where(col(AuthorizationCode.id) == code.id)
        .values(issued_session_id=auth_session.id)
    )
    await db.flush()
    await audit.record(
        db,
        _as(ctx, user),
        "oauth.token_issued",
        subject_id=user.id,
        resource=f"oauth_client:{client.id}",
        details={
            "grant_type": "authorization_code",
            "scope": code.scope,
            "session_id": str(auth_session.id),
            "dpop": bool(jkt),
        },
    )


async def lookup_refresh(db: AsyncSession, presented: str, client_id: str) -> Grantee | None:
    """What a refresh needs, read up front in the request's transaction (the rotation itself is
    `commit_refresh`): the token and its session (through `app.tokens`), the session's link to
    the client (the DPoP key the family is bound to, the level the client required) and the
    account's status and identity level now."""
    state = await tokens.refresh_token_state(db, presented)
    if state is None:
        return None
    auth_session, token_row = state
    if not _family_serves(auth_session, client_id):
        return None
    link = (await db.execute(_LINK, {"session_id": auth_session.id})).first()
    dpop_jkt, required_loa = link if link is not None else (None, 0)
    user = await identity.get_active_user(db, auth_session.user_id)
    level_now = user.identity_level if user else 0
    if level_now < (required_loa or 0):
        return None
    return Grantee(
        user_id=auth_session.user_id,
        auth_time=auth_session.auth_time,
        acr=current_acr(auth_session.acr, level_now),
        refresh_token=presented,
        session=auth_session,
        dpop_jkt=dpop_jkt,
        required_loa=required_loa or 0,
        extra={"token_row": token_row, "user_active": user is not None},
    )


def _family_serves(family: AuthSession, client_id: str) -> bool:
    """The client owns the family, and it is neither revoked nor expired."""
    return (
        family.client_id == client_id
        and family.revoked_at is None
        and family.expires_at > clock.now()
    )


# Built once: building and cache-keying a statement per request costs more than running it.
_LINK = sa.select(col(ClientSession.dpop_jkt), col(ClientSession.required_loa)).where(
    col(ClientSession.auth_session_id) == sa.bindparam("session_id")
)


def refresh_answer(
    client: OAuthClient, grantee: Grantee, scope: str | None, *, jkt: str | None
) -> dict[str, Any]:
    """The token response for a refresh, signed without touching the database; the rotation is
    stored by `commit_refresh` before the answer leaves (and replaces it if it fails)."""
    bound = grantee.dpop_jkt
    if bound and bound != jkt:
        raise GrantRefused("The refresh token is bound to another DPoP key.")
    if not grantee.extra.get("user_active"):
        raise GrantRefused("The account is no longer active.")
    session = grantee.session
    assert session is not None
    granted = scope or session.scope
    sub = subject_for(client, grantee.user_id)
    access, ttl = _access_token(
        client, sub=sub, session_id=session.id, scope=granted, acr=grantee.acr, jkt=bound
    )
    answer = _token_answer(access, ttl, granted, bound)
    answer["refresh_token"] = tokens.new_refresh_token()
    if "openid" in scope_set(granted):
        answer["id_token"] = make_id_token(
            client,
            sub=sub,
            auth_time=session.auth_time,
            acr=grantee.acr,
            sid=str(session.id),
            access_token=access,
        )
    return answer


async def commit_refresh(
    db: AsyncSession,
    client: OAuthClient,
    grantee: Grantee,
    successor: str,
    *,
    ctx: AuditContext,
) -> None:
    """Store the rotation (and its audit entry) the answer announces, or refuse it: the token
    service's one rotation, with this provider's grace window for a lost answer's retry."""
    assert grantee.refresh_token is not None and grantee.session is not None
    try:
        await tokens.rotate_refresh_token(
            db,
            grantee.refresh_token,
            client_id=client.id,
            ip=ctx.ip,
            grace_seconds=get_oauth_settings().refresh_grace_seconds,
            successor=successor,
            known=(grantee.extra["token_row"], grantee.session),
        )
    except AppError as exc:
        if exc.error is REFRESH_REUSED:
            await audit.record(
                db,
                ctx,
                "oauth.token_revoked",
                subject_id=grantee.user_id,
                resource=f"oauth_client:{client.id}",
                details={"reason": "refresh_token_reuse", "session_id": str(grantee.session.id)},
            )
            raise GrantRefused(
                "The refresh token was already used; its family is revoked.", commit=True
            ) from None
        raise GrantRefused("The refresh token is invalid.") from None
    await audit.record(
        db,
        ctx,
        "oauth.token_issued",
        subject_id=grantee.user_id,
        resource=f"oauth_client:{client.id}",
        details={"grant_type": "refresh_token", "session_id": str(grantee.session.id)},
    )
    await _keep_capped_acr(db, grantee)


async def _keep_capped_acr(db: AsyncSession, grantee: Grantee) -> None:
    """The refresh said a lower level than the family started at (the account's level fell):
    the family keeps saying it, to introspection too."""
    family = grantee.session
    if family is not None and family.acr is not None and grantee.acr != family.acr:
        await tokens.cap_session_acr(db, family.id, grantee.acr)


def issue_client_credentials(
    client: OAuthClient, scope: str, jkt: str | None
) -> tuple[dict[str, Any], str]:
    """A JWT access token for a partner back end (no user): signing only, no database."""
    access, ttl = _access_token(
        client, sub=client.id, session_id=None, scope=scope, acr=None, jkt=jkt
    )
    return _token_answer(access, ttl, scope, jkt), access


# ---------------------------------------------------------------- access tokens, introspection


@dataclass
class TokenInfo:
    kind: str  # access_token | refresh_token
    client_id: str
    active: bool
    claims: dict[str, Any]
    session_id: uuid.UUID | None = None
    jti: str | None = None
    exp: int = 0
    payload: dict[str, Any] | None = None  # the introspection answer, once computed
    acr_now: str | None = None  # the family's acr as it stands now (capped on a level change)
    user_id: uuid.UUID | None = None  # a refresh token's citizen

    def check_client(self, client: Any) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def is_expired(self) -> bool:
        return False  # folded into `active`

    def is_revoked(self) -> bool:
        return not self.active


def decode_access_token(token: str) -> dict[str, Any] | None:
    """Signature, issuer and audience of an access token this provider issued (not expiry)."""
    claims = tokens.signed_claims(token)
    issuer = get_settings().issuer
    if claims is None or claims.get("iss") != issuer or claims.get("aud") != issuer:
        return None
    return claims


async def access_token_info(db: AsyncSession, token: str) -> TokenInfo | None:
    """What introspection needs of an access token. A `client_credentials` token is checked
    against the in-process revocation list (no database round trip); a user's token against
    its session. Either is inactive once its client is disabled."""
    claims = decode_access_token(token)
    if claims is None or not claims.get("client_id"):
        return None
    active = int(claims.get("exp", 0)) > clock.now().timestamp()
    session_id = None
    acr_now = None
    if claims.get("sid"):
        session_id = uuid.UUID(claims["sid"])
        if active:
            family = await tokens.active_session(db, session_id)
            active = family is not None
            acr_now = family.acr if family is not None else None
    elif active:
        active = not await revocations.is_revoked(db, claims["jti"])
    if active:
        active = await client_view(db, claims["client_id"]) is not None
    return TokenInfo(
        "access_token",
        claims["client_id"],
        active,
        claims,
        session_id,
        claims.get("jti"),
        int(claims.get("exp", 0)),
        acr_now=acr_now,
    )


async def refresh_token_info(db: AsyncSession, token: str) -> TokenInfo | None:
    state = await tokens.refresh_token_state(db, token)
    if state is None:
        return None
    auth_session, row = state
    client_id = auth_session.client_id
    if not client_id or client_id == BROWSER_CLIENT:
        return None
    active = (
        auth_session.revoked_at is None
        and auth_session.expires_at > clock.now()
        and row.used_at is None
        and await client_view(db, client_id) is not None
    )
    exp = int(auth_session.expires_at.timestamp())
    claims = {
        "scope": auth_session.scope,
        "client_id": client_id,
        "exp": exp,
        "iat": int(row.created_at.timestamp()),
        "sid": str(auth_session.id),
    }
    return TokenInfo(
        "refresh_token",
        client_id,
        active,
        claims,
        auth_session.id,
        exp=exp,
        acr_now=auth_session.acr,
        user_id=auth_session.user_id,
    )


async def find_token(db: AsyncSession, token: str, hint: str | None) -> TokenInfo | None:
    order = [refresh_token_info, access_token_info]
    if hint != "refresh_token":
        order.reverse()
    for finder in order:
        info = await finder(db, token)
        if info is not None:
            return info
    return None


async def introspection_payload(db: AsyncSession, info: TokenInfo) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "active": True,
        "token_type": info.kind,
        "client_id": info.client_id,
        "scope": info.get_scope(),
        "iss": get_settings().issuer,
        "exp": info.exp,
    }
    for name in ("sub", "iat", "aud", "jti", "acr", "cnf", "sid"):
        if name in info.claims:
            payload[name] = info.claims[name]
    if info.acr_now is not None:
        # The level the citizen has now: a token signed before staff revoked level 2 says more.
        payload["acr"] = info.acr_now
    if info.kind == "refresh_token" and info.session_id is not None:
        client = await db.get(OAuthClient, info.client_id)
        if client and info.user_id:
            payload["sub"] = subject_for(client, info.user_id)
    if "cnf" in info.claims:
        payload["token_type"] = "DPoP"  # noqa: S105
    return payload


async def revoke(db: AsyncSession, info: TokenInfo, ctx: AuditContext) -> None:
    """RFC 7009: a refresh token or a user's access token ends its whole family (session)."""
    if info.session_id is not None:
        links = (
            (
                await db.execute(
                    sa.select(ClientSession).where(
                        col(ClientSession.auth_session_id) == info.session_id
                    )
                )
            )
            .scalars()
            .all()
        )
        if links:
            await _end_client_sessions(db, list(links), reason="revoked", notify=False)
        else:
            await tokens.revoke_session(db, info.session_id, reason="revoked")
        subject = links[0].user_id if links else None
    else:
        expires = clock.now() + timedelta(seconds=max(0, info.exp - int(clock.now().timestamp())))
        if info.jti and await db.get(RevokedAccessToken, info.jti) is None:
            db.add(RevokedAccessToken(jti=info.jti, expires_at=expires))
            await db.flush()
            revocations.remember(info.jti)
        subject = None
    await audit.record(
        db,
        ctx,
        "oauth.token_revoked",
        subject_id=subject,
        resource=f"oauth_client:{info.client_id}",
        details={
            "token_type": info.kind,
            "session_id": str(info.session_id) if info.session_id else None,
        },
    )


async def userinfo_subject(
    db: AsyncSession, claims: dict[str, Any]
) -> tuple[User, OAuthClient, ClientSession] | None:
    """The citizen and client behind a user access token, only while its session lives."""
    if not claims.get("sid"):
        return None
    session_id = uuid.UUID(claims["sid"])
    if await tokens.active_session(db, session_id) is None:
        return None
    link = await db.get(ClientSession, session_id)
    client = await db.get(OAuthClient, claims.get("client_id"))
    if link is None or client is None or client.status != "active":
        return None
    user = await identity.get_active_user(db, link.user_id)
    return (user, client, link) if user else None


# ---------------------------------------------------------------- logout


def decode_id_token_hint(hint: str) -> dict[str, Any] | None:
    """Our own ID token, signature checked; expiry ignored (OpenID RP-Initiated Logout 1.0)."""
    try:
        header = jwt.decode(hint, key_store.jwks_keyset(), algorithms=list(ID_TOKEN_ALGS))
    except (JoseError, ValueError, KeyError, TypeError):
        return None
    claims = header.claims
    return claims if claims.get("iss") == get_settings().issuer else None


def hint_names(
    hint: dict[str, Any], client: OAuthClient | None, browser: AuthSession | None
) -> bool:
    """Whether an ID token hint (already verified) is about the citizen signed in to `browser`."""
    if browser is None or client is None or hint.get("aud") != client.id:
        return False
    return hint.get("sub") == subject_for(client, browser.user_id)


async def _end_client_sessions(
    db: AsyncSession, links: list[ClientSession], *, reason: str, notify: bool = True
) -> None:
    for link in links:
        ended = await tokens.revoke_session(db, link.auth_session_id, reason=reason)
        if not (ended and notify):
            continue
        client = await db.get(OAuthClient, link.client_id)
        if client and client.backchannel_logout_uri:
            await jobs.enqueue(
                db,
                BACKCHANNEL_LOGOUT,
                {
                    "client_id": client.id,
                    "sid": str(link.auth_session_id),
                    "sub": subject_for(client, link.user_id),
                },
                dedupe_key=f"bcl:{link.auth_session_id}",
            )


async def logout(
    db: AsyncSession,
    *,
    browser: AuthSession | None,
    client_sid: str | None,
    ctx: AuditContext,
) -> int:
    """End the browser session and every client session opened from it (plus the one named by
    the ID token hint); clients that registered back-channel logout are told, via the outbox."""
    conditions: list[sa.ColumnElement[bool]] = []
    if browser is not None:
        conditions.append(col(ClientSession.browser_session_id) == browser.id)
    if client_sid:
        with contextlib.suppress(ValueError):
            conditions.append(col(ClientSession.auth_session_id) == uuid.UUID(client_sid))
    links: list[ClientSession] = []
    if conditions:
        links = list(
            (await db.execute(sa.select(ClientSession).where(sa.or_(*conditions)))).scalars().all()
        )
    await _end_client_sessions(db, links, reason="logout")
    if browser is not None:
        await tokens.revoke_session(db, browser.id, reason="logout")
    user_id = browser.user_id if browser else (links[0].user_id if links else None)
    if user_id is not None:
        await audit.record(
            db, ctx, "oauth.logout", subject_id=user_id, details={"client_sessions": len(links)}
        )
    return len(links)


def logout_token(client: OAuthClient, *, sub: str, sid: str) -> str:
    settings = get_settings()
    now = int(clock.now().timestamp())
    claims = {
        "iss": settings.issuer,
        "aud": client.id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": sub,
        "sid": sid,
        "events": {LOGOUT_EVENT: {}},
    }
    return _sign(client, claims, typ="logout+jwt")


# ---------------------------------------------------------------- personal data (Law 91/2025)


async def export_personal_data(db: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    return {
        "allowed_apps": [
            {
                "client_id": client.id,
                "name": client.name,
                "scope": consent.scope,
                "granted_at": consent.granted_at.isoformat(),
            }
            for consent, client in await list_apps(db, user_id)
        ]
    }


async def erase_personal_data(db: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    """Partners are told (back-channel logout) before the account's sessions go."""
    links = (
        (await db.execute(sa.select(ClientSession).where(col(ClientSession.user_id) == user_id)))
        .scalars()
        .all()
    )
    await _end_client_sessions(db, list(links), reason="account_deleted")
    await db.execute(sa.delete(Consent).where(col(Consent.user_id) == user_id))
    await db.execute(sa.delete(AuthorizationCode).where(col(AuthorizationCode.user_id) == user_id))
    await db.execute(sa.delete(ClientSession).where(col(ClientSession.user_id) == user_id))
    return []


# ---------------------------------------------------------------- identity level changes


async def end_sessions_above_level(db: AsyncSession, user_id: uuid.UUID, new_level: int) -> None:
    """The citizen's identity level fell to `new_level`: end their partner token families whose
    client required more (its min_loa now, or the level asked for at authorization), and tell
    the clients that registered back-channel logout. Subscribed to `app.tokens` at start."""
    links = (
        (
            await db.execute(
                sa.select(ClientSession)
                .join(OAuthClient, col(OAuthClient.id) == col(ClientSession.client_id))
                .where(
                    col(ClientSession.user_id) == user_id,
                    sa.or_(
                        col(ClientSession.required_loa) > new_level,
                        col(OAuthClient.min_loa) > new_level,
                    ),
                )
            )
        )
        .scalars()
        .all()
    )
    alive = await tokens.active_session_ids(db, [link.auth_session_id for link in links])
    await _end_client_sessions(
        db,
        [link for link in links if link.auth_session_id in alive],
        reason="identity_level_lowered",
    )


tokens.on_identity_level_changed(end_sessions_above_level)


def _register_personal_data() -> None:
    from app.core import personal_data

    personal_data.register("oauth", exporter=export_personal_data, eraser=erase_personal_data)


_register_personal_data()
