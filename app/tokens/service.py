"""The token service: access tokens (JWT, RFC 9068 profile), sessions and rotating refresh tokens.

Refresh tokens are opaque, stored only as keyed hashes, and single use: each refresh marks the
presented token used and issues its successor. Presenting a used token again (after the optional
grace window for concurrent retries) is treated as theft and revokes the whole family (session).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from app.core import clock
from app.core.config import get_settings
from app.core.db import new_id, session_factory
from app.core.errors import TOKEN_INVALID, AppError
from app.core.security import keyed_hash, random_token
from app.core.tables import rows_matched, table_of
from app.tokens import errors
from app.tokens.config import get_token_settings
from app.tokens.keys import key_store
from app.tokens.models import AuthSession, RefreshToken

ACCESS_TOKEN_ALG = "ES256"  # noqa: S105 - an algorithm name, not a secret
# A session's `acr`: the identity level (Decree 69/2024) its sign-in stood on.
ACR_PREFIX = "urn:thainguyen:id:loa:"
LEVELS = (0, 1, 2)
REFRESH_PREFIX = "rt_"
# Access tokens whose signature already checked out, with their key id and claims. A client sends
# the same token for up to its lifetime, and ECDSA verification is the costliest step of
# authenticating a request. Issuer, audience, expiry and the key are still checked every time.
_VERIFIED_MAX = 2048
_verified: dict[str, tuple[str, dict[str, Any]]] = {}


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    sid: str | None
    scope: str
    client_id: str | None
    exp: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session: AuthSession


def issue_access_token(
    *,
    subject: str,
    session_id: uuid.UUID | None,
    scope: str = "",
    client_id: str | None = None,
    audience: str | None = None,
    extra_claims: dict[str, Any] | None = None,
    ttl_seconds: int | None = None,
) -> tuple[str, int]:
    settings, lifetimes = get_settings(), get_token_settings()
    ttl = ttl_seconds or lifetimes.access_token_ttl_seconds
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": audience or lifetimes.first_party_audience,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "client_id": client_id or lifetimes.first_party_audience,
        "scope": scope,
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    if extra_claims:
        claims.update(extra_claims)
    kid, key = key_store.signing_key(ACCESS_TOKEN_ALG)
    header = {"alg": ACCESS_TOKEN_ALG, "kid": kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=[ACCESS_TOKEN_ALG]), ttl


# Longer than any access token this service signs (~700 bytes with DPoP and acr): anything longer
# is refused before it is decoded.
MAX_TOKEN_LENGTH = 4096
_HEADER_KEYS = frozenset({"alg", "kid", "typ"})


def _header_kid(token: str) -> str | None:
    """The key id of a token shaped like one of our access tokens, else None.

    The header is the attacker's text until the signature checks out: it must be a JSON object
    with exactly our fields (`alg` ES256, `typ` at+jwt, a string `kid`), nothing more (a `crit`
    or a `jwk` is never ours), and the token of a bounded length."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        return None
    try:
        segment = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(header, dict) or set(header) - _HEADER_KEYS:
        return None
    kid = header.get("kid")
    if header.get("typ") != "at+jwt" or header.get("alg") != ACCESS_TOKEN_ALG:
        return None
    return kid if isinstance(kid, str) and 0 < len(kid) <= 100 else None


async def verify_access_token(
    session: AsyncSession | None, token: str, *, audience: str | None = None
) -> AccessClaims:
    """Check signature, issuer, audience and expiry. Session revocation is the caller's check.

    `session` is only used to reload the keys when a token names one made by another process;
    without one, a short session of its own does it.
    """
    settings = get_settings()
    claims = signed_claims(token)
    if claims is None:
        claims = await _verify_with_fresh_keys(session, token)
    now = int(clock.now().timestamp())
    expected_aud = audience or get_token_settings().first_party_audience
    aud = claims.get("aud")
    aud_ok = aud == expected_aud or (isinstance(aud, list) and expected_aud in aud)
    if claims.get("iss") != settings.issuer or not aud_ok or int(claims.get("exp", 0)) <= now:
        raise AppError(TOKEN_INVALID)
    return AccessClaims(
        sub=str(claims["sub"]),
        sid=claims.get("sid"),
        scope=str(claims.get("scope", "")),
        client_id=claims.get("client_id"),
        exp=int(claims["exp"]),
        raw=dict(claims),  # a copy: the cached claims must not change under a caller
    )


def signed_claims(token: str) -> dict[str, Any] | None:
    """The claims of an access token signed by a key this process knows, else None.

    The signature only: issuer, audience, expiry and revocation are the caller's to check."""
    cached = _verified.get(token)
    if cached is not None and key_store.verification_key(cached[0]) is not None:
        return cached[1]
    kid = _header_kid(token)
    key = key_store.verification_key(kid) if kid else None
    return None if kid is None or key is None else _decode(token, kid, key)


async def _verify_with_fresh_keys(session: AsyncSession | None, token: str) -> dict[str, Any]:
    """`signed_claims` after loading the keys again: a token may name a key made by another
    process since we loaded."""
    kid = _header_kid(token)
    if kid is None or not key_store.stale():
        raise AppError(TOKEN_INVALID)
    if session is None:
        async with session_factory()() as own:
            await key_store.load(own)
    else:
        await key_store.load(session)
    key = key_store.verification_key(kid)
    claims = _decode(token, kid, key) if key is not None else None
    if claims is None:
        raise AppError(TOKEN_INVALID)
    return claims


def _decode(token: str, kid: str, key: Any) -> dict[str, Any] | None:
    try:
        decoded = jwt.decode(token, KeySet([key]), algorithms=[ACCESS_TOKEN_ALG])
    except (JoseError, ValueError, TypeError):
        return None
    if len(_verified) >= _VERIFIED_MAX:
        del _verified[next(iter(_verified))]  # the oldest entry
    _verified[token] = (kid, decoded.claims)
    return decoded.claims


def hash_refresh_token(token: str) -> str:
    """The keyed hash a refresh token is stored and looked up by."""
    return keyed_hash(token, purpose="refresh-token")


async def start_session(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    client_id: str | None = None,
    scope: str = "",
    device_name: str | None = None,
    user_agent: str | None = None,
    ip: str | None = None,
    acr: str | None = None,
    auth_time: datetime | None = None,
    session_id: uuid.UUID | None = None,
    refresh_token: str | None = None,
) -> tuple[AuthSession, str]:
    """Open a session and return it with its first refresh token (`session_id` and
    `refresh_token`: those a caller already announced in its answer)."""
    now = clock.now()
    auth_session = AuthSession(
        id=session_id or new_id(),
        user_id=user_id,
        client_id=client_id,
        scope=scope,
        device_name=device_name,
        user_agent=user_agent[:500] if user_agent else None,
        ip=ip,
        acr=acr,
        auth_time=auth_time or now,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(days=get_token_settings().refresh_token_ttl_days),
    )
    db.add(auth_session)
    await db.flush()  # the parent row first: no ORM relationship orders these inserts
    refresh = refresh_token or random_token(REFRESH_PREFIX)
    db.add(RefreshToken(session_id=auth_session.id, token_hash=hash_refresh_token(refresh)))
    await db.flush()
    return auth_session, refresh


async def rotate_refresh_token(
    db: AsyncSession,
    presented: str,
    *,
    client_id: str | None = None,
    ip: str | None = None,
    grace_seconds: int | None = None,
    successor: str | None = None,
    known: tuple[RefreshToken, AuthSession] | None = None,
) -> tuple[AuthSession, str]:
    """Spend `presented` and return the session with its successor token.

    `successor` lets a caller that already answered with the new token (the OIDC provider) have
    that one stored; `known` skips re-reading rows the caller just read for `presented`.
    Raises `auth.refresh_token_reused` (and revokes the family, committing that) on reuse.
    """
    grace = (
        get_token_settings().refresh_reuse_grace_seconds if grace_seconds is None else grace_seconds
    )
    now = clock.now()
    if known is None:
        row = (
            await db.execute(_TOKEN_WITH_SESSION, {"token_hash": hash_refresh_token(presented)})
        ).first()
        if row is None:
            raise AppError(errors.REFRESH_INVALID)
        token, auth_session = row
    else:
        token, auth_session = known
    if (
        auth_session.revoked_at is not None
        or auth_session.expires_at <= now
        or auth_session.client_id != client_id
    ):
        raise AppError(errors.REFRESH_INVALID)

    # Atomic spend, linking the successor in the same statement: of two concurrent refreshes
    # with one token, exactly one wins.
    successor = successor or random_token(REFRESH_PREFIX)
    successor_id = new_id()
    spent = await db.execute(
        _SPEND, {"token_id": token.id, "spent_at": now, "successor_id": successor_id}
    )
    if rows_matched(spent) != 1:
        used_at = token.used_at
        if used_at is None:  # `known` was read before a concurrent request spent it
            used_at = (await db.execute(_USED_AT, {"token_id": token.id})).scalar() or now
        # A retry within the grace window (the answer to the first use was lost) gets another
        # successor, linked instead; one retry only, and atomically so: a token presented three
        # times, or many times at once, is reuse whatever the window.
        retry = grace and now - used_at <= timedelta(seconds=grace)
        if (
            not retry
            or rows_matched(
                await db.execute(_RELINK, {"token_id": token.id, "successor_id": successor_id})
            )
            != 1
        ):
            await revoke_session(db, auth_session.id, reason="refresh_token_reuse")
            raise AppError(errors.REFRESH_REUSED, commit=True)
    else:
        set_committed_value(token, "used_at", now)
    set_committed_value(token, "replaced_by_id", successor_id)

    # Core statements on the tables: no unit-of-work flush nor identity-map sync per refresh.
    await db.execute(
        _INSERT_TOKEN,
        {
            "id": successor_id,
            "session_id": auth_session.id,
            "token_hash": hash_refresh_token(successor),
            "created_at": now,
        },
    )
    new_ip = ip or auth_session.ip
    await db.execute(
        _TOUCH_SESSION, {"session_id": auth_session.id, "used_at": now, "new_ip": new_ip}
    )
    set_committed_value(auth_session, "last_used_at", now)
    set_committed_value(auth_session, "ip", new_ip)
    await db.flush()
    return auth_session, successor


# The statements of a refresh, built once (building and cache-keying a statement per request
# costs more than running it). Core statements on the tables, values bound per call.
_tokens_table = table_of(RefreshToken)
_sessions_table = table_of(AuthSession)
_TOKEN_WITH_SESSION = (
    sa.select(RefreshToken, AuthSession)
    .join(AuthSession, col(AuthSession.id) == col(RefreshToken.session_id))
    .where(col(RefreshToken.token_hash) == sa.bindparam("token_hash"))
)
_SPEND = (
    sa.update(_tokens_table)
    .where(_tokens_table.c.id == sa.bindparam("token_id"), _tokens_table.c.used_at.is_(None))
    .values(
        used_at=sa.bindparam("spent_at", type_=_tokens_table.c.used_at.type),
        replaced_by_id=sa.bindparam("successor_id", type_=_tokens_table.c.replaced_by_id.type),
    )
)
# Relinks a spent token to a retry's successor only while it still names the successor of its
# spend (made in the same statement or call, so created at its `used_at`): the first retry wins,
# any other finds another successor there and changes nothing.
_first_successor = _tokens_table.alias("first_successor")
_RELINK = (
    sa.update(_tokens_table)
    .where(
        _tokens_table.c.id == sa.bindparam("token_id"),
        sa.exists().where(
            _first_successor.c.id == _tokens_table.c.replaced_by_id,
            _first_successor.c.created_at == _tokens_table.c.used_at,
        ),
    )
    .values(replaced_by_id=sa.bindparam("successor_id", type_=_tokens_table.c.replaced_by_id.type))
)
_USED_AT = sa.select(_tokens_table.c.used_at).where(_tokens_table.c.id == sa.bindparam("token_id"))
_INSERT_TOKEN = sa.insert(_tokens_table)
_TOUCH_SESSION = (
    sa.update(_sessions_table)
    .where(_sessions_table.c.id == sa.bindparam("session_id"))
    .values(
        last_used_at=sa.bindparam("used_at", type_=_sessions_table.c.last_used_at.type),
        ip=sa.bindparam("new_ip", type_=_sessions_table.c.ip.type),
    )
)


def new_refresh_token() -> str:
    return random_token(REFRESH_PREFIX)


async def revoke_session(db: AsyncSession, session_id: uuid.UUID, *, reason: str) -> bool:
    result = await db.execute(
        sa.update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=clock.now(), revoke_reason=reason)
    )
    return rows_matched(result) > 0


async def revoke_user_sessions(
    db: AsyncSession, user_id: uuid.UUID, *, reason: str, client_id: str | None = None
) -> int:
    query = sa.update(AuthSession).where(
        col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)
    )
    if client_id is not None:
        query = query.where(col(AuthSession.client_id) == client_id)
    result = await db.execute(query.values(revoked_at=clock.now(), revoke_reason=reason))
    return rows_matched(result)


async def active_session(db: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
    row = await db.get(AuthSession, session_id)
    if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
        return None
    return row


async def active_session_ids(db: AsyncSession, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these sessions are still signed in (neither revoked nor expired), in batches:
    for domains that keep state per sign-in (push tokens) and must drop it once it ends."""
    ids, now = list(set(session_ids)), clock.now()
    alive: set[uuid.UUID] = set()
    for start in range(0, len(ids), 1000):
        rows = await db.execute(
            sa.select(col(AuthSession.id)).where(
                col(AuthSession.id).in_(ids[start : start + 1000]),
                col(AuthSession.revoked_at).is_(None),
                col(AuthSession.expires_at) > now,
            )
        )
        alive.update(rows.scalars())
    return alive


async def list_active_sessions(db: AsyncSession, user_id: uuid.UUID) -> list[AuthSession]:
    rows = await db.execute(
        sa.select(AuthSession)
        .where(
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > clock.now(),
        )
        .order_by(col(AuthSession.last_used_at).desc())
    )
    return list(rows.scalars())


async def find_session_by_refresh_token(db: AsyncSession, presented: str) -> AuthSession | None:
    row = (
        await db.execute(
            sa.select(AuthSession)
            .join(RefreshToken, col(RefreshToken.session_id) == col(AuthSession.id))
            .where(col(RefreshToken.token_hash) == hash_refresh_token(presented))
        )
    ).scalar_one_or_none()
    return row


async def delete_user_sessions(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Account erasure: sessions and their tokens go entirely."""
    await db.execute(sa.delete(AuthSession).where(col(AuthSession.user_id) == user_id))


async def refresh_token_state(
    db: AsyncSession, presented: str
) -> tuple[AuthSession, RefreshToken] | None:
    """The session and token row behind a refresh token, without spending it (introspection)."""
    row = (
        await db.execute(
            sa.select(AuthSession, RefreshToken)
            .join(RefreshToken, col(RefreshToken.session_id) == col(AuthSession.id))
            .where(col(RefreshToken.token_hash) == hash_refresh_token(presented))
        )
    ).first()
    return (row[0], row[1]) if row else None


# ---------------------------------------------------------------- identity level changes


def acr_for(level: int) -> str:
    return f"{ACR_PREFIX}{level}"


def level_of(acr: str | None) -> int | None:
    if acr and acr.startswith(ACR_PREFIX) and acr[len(ACR_PREFIX) :] in {"0", "1", "2"}:
        return int(acr[len(ACR_PREFIX) :])
    return None


async def cap_session_acr(db: AsyncSession, session_id: uuid.UUID, acr: str) -> None:
    """A session's acr, lowered to the level its account has now."""
    await db.execute(
        sa.update(AuthSession).where(col(AuthSession.id) == session_id).values(acr=acr)
    )


LevelChangeHook = Callable[[AsyncSession, uuid.UUID, int], Awaitable[None]]
_level_change_hooks: list[LevelChangeHook] = []


def on_identity_level_changed(hook: LevelChangeHook) -> None:
    """Subscribe (at start) to a change of a citizen's identity level: `hook(db, user_id,
    new_level)` runs in the transaction of the change, before the sessions' acr is capped. The
    OpenID Connect provider ends there the partner sessions that required a higher level."""
    if hook not in _level_change_hooks:
        _level_change_hooks.append(hook)


async def identity_level_changed(db: AsyncSession, user_id: uuid.UUID, new_level: int) -> int:
    """A citizen's identity level is now `new_level`: the sessions that relied on more end or
    step down, in the caller's transaction.

    Subscribers end what required more (partner sessions, with back-channel logout); then every
    remaining live session whose `acr` says more than `new_level` is capped at it, so refreshed
    ID and access tokens and introspection say the level the citizen has now. A raised level
    changes nothing: a session's acr is what its sign-in stood on. Returns the sessions capped."""
    for hook in list(_level_change_hooks):
        await hook(db, user_id, new_level)
    higher = [acr_for(level) for level in LEVELS if level > new_level]
    if not higher:
        return 0
    result = await db.execute(
        sa.update(AuthSession)
        .where(
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.acr).in_(higher),
        )
        .values(acr=acr_for(max(new_level, 0)))
        .execution_options(synchronize_session="fetch")
    )
    return rows_matched(result)
