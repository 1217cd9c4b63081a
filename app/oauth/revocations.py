"""Revoked `client_credentials` access tokens, known in process.

Introspecting such a token is a signature check plus this lookup: no database round trip per
request. The set is reloaded from `oauth_revoked_tokens` at most every `SYNC_SECONDS` by the
request that finds it stale (one small query a second per process: the table holds only revoked
tokens that have not yet expired). A revocation answered by this process counts here at once;
one answered by another process counts here within `SYNC_SECONDS`.

User access tokens are not listed here: they end with their session, which introspection reads.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.tables import table_of
from app.oauth.models import RevokedAccessToken

SYNC_SECONDS = 1.0

_table = table_of(RevokedAccessToken)
_LIVE = sa.select(_table.c.jti).where(_table.c.expires_at > sa.bindparam("now"))

_revoked: set[str] = set()
_added_while_syncing: set[str] = set()
_synced_at = float("-inf")
_syncing = False


async def is_revoked(db: AsyncSession, jti: str) -> bool:
    never = _synced_at == float("-inf")
    if never or (time.monotonic() - _synced_at > SYNC_SECONDS and not _syncing):
        await sync(db)  # while another request reloads, the set it replaces is 1 s old
    return jti in _revoked


def remember(jti: str) -> None:
    """A revocation made by this process (in addition to its row)."""
    _revoked.add(jti)
    if _syncing:
        _added_while_syncing.add(jti)


async def sync(db: AsyncSession) -> None:
    global _revoked, _synced_at, _syncing
    _syncing = True
    _added_while_syncing.clear()
    try:
        rows = await db.execute(_LIVE, {"now": clock.now()})
        _revoked = set(rows.scalars()) | _added_while_syncing
        _synced_at = time.monotonic()
    finally:
        _syncing = False


def forget_all() -> None:
    """Start over (tests that empty the tables)."""
    global _synced_at
    _revoked.clear()
    _synced_at = float("-inf")
