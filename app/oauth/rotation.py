"""The refresh grant's storage on PostgreSQL: one read before authlib runs, one write after.

The ORM path (`service.lookup_refresh` / `service.commit_refresh` through `app.tokens`) reads in
two statements and writes in five (BEGIN, spend, successor, session touch, audit row, COMMIT),
each through the session's unit of work; on a refresh that cost more CPU than signing its two
JWTs. Here the common case is two `Direct` statements, each atomic by itself:

- `read`: the token, its session, the client link (the DPoP key the family is bound to, the
  level the client required) and the account's status and identity level now, by the token's
  keyed hash;
- `rotate`: one statement that spends the token only if it is still unused, its session alive,
  owned by this client and its account active; touches the session; stores the successor; and
  writes the `oauth.token_issued` audit entry. All of it, or (no row back) nothing.

"No row back" is not an answer: it means the token was spent meanwhile (a concurrent retry, or
reuse) or its family ended. The caller then takes the ORM path, which tells those apart: a retry
within the grace window gets another successor, later reuse revokes the family (as Hydra does).
SQLite takes the ORM path always (no data-changing statements in a WITH there, and one writer
at a time makes it as fast).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.core.db import Direct, get_engine
from app.identity.models import User
from app.oauth.models import ClientSession
from app.tokens import service as tokens
from app.tokens.models import AuthSession, RefreshToken


def available() -> bool:
    return get_engine().dialect.name == "postgresql"


@dataclass(frozen=True)
class Family:
    """The session (token family) behind a refresh token, as the grant needs it: no ORM object."""

    id: uuid.UUID
    user_id: uuid.UUID
    client_id: str | None
    scope: str
    auth_time: datetime
    acr: str | None
    revoked_at: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class Found:
    token_id: uuid.UUID
    used: bool
    family: Family
    dpop_jkt: str | None
    user_active: bool
    user_level: int  # the account's identity level now, not the one the family started at
    required_loa: int  # what the client required when it was authorized


_tokens = RefreshToken.__table__  # type: ignore[attr-defined]
_sessions = AuthSession.__table__  # type: ignore[attr-defined]
_links = ClientSession.__table__  # type: ignore[attr-defined]
_users = User.__table__  # type: ignore[attr-defined]

_READ = Direct(
    sa.select(
        _tokens.c.id.label("token_id"), _tokens.c.used_at, _sessions.c.id.label("session_id"),
        _sessions.c.user_id, _sessions.c.client_id, _sessions.c.scope, _sessions.c.auth_time,
        _sessions.c.acr, _sessions.c.revoked_at, _sessions.c.expires_at, _links.c.dpop_jkt,
        _links.c.required_loa, _users.c.status.label("user_status"), _users.c.identity_level,
    )
    .select_from(
        _tokens.join(_sessions, _sessions.c.id == _tokens.c.session_id)
        .join(_users, _users.c.id == _sessions.c.user_id)
        .outerjoin(_links, _links.c.auth_session_id == _sessions.c.id)
    )
    .where(_tokens.c.token_hash == sa.bindparam("token_hash"))
)


async def read(token_hash: str) -> Found | None:
    row = await _READ.fetch_one({"token_hash": token_hash})
    if row is None:
        return None
    family = Family(row["session_id"], row["user_id"], row["client_id"], row["scope"],
                    row["auth_time"], row["acr"], row["revoked_at"], row["expires_at"])
    return Found(row["token_id"], row["used_at"] is not None, family, row["dpop_jkt"],
                 row["user_status"] == "active", row["identity_level"],
                 row["required_loa"] or 0)


async def rotate(
    found: Found, *, client_id: str, now: datetime, successor_id: uuid.UUID,
    successor_hash: str, audit: dict[str, Any],
) -> bool:
    """Spend, touch, store the successor and audit, in one statement; False: nothing changed."""
    return await tokens.rotate_client_refresh_token(
        found.token_id, client_id=client_id, now=now, successor_id=successor_id,
        successor_hash=successor_hash, audit=audit)
