"""The key store: asymmetric signing keys in the database (private part encrypted), cached.

Access tokens use ES256 (fast to sign and verify); the OpenID Connect provider also keeps an RS256
key, which every relying party must support for ID tokens.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import clock
from app.core.security import decrypt_pii, encrypt_pii
from app.tokens.models import SigningKey

SUPPORTED_ALGS = ("ES256", "RS256")
_CACHE_SECONDS = 60.0
_ENSURE_LOCK_ID = 0x7417_0001  # pg_advisory_xact_lock key of `KeyStore.ensure`
# JWKS answers are cacheable for 5 minutes: a new key is published twice that before it signs.
KEY_PUBLISH_SECONDS = 600
# Longer than the longest-lived token signed with a key (access 15 min, ID token 10 min).
KEY_RETAIN_SECONDS = 3600


def _generate(alg: str) -> ECKey | RSAKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True, auto_kid=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True, auto_kid=True)
    raise ValueError(f"unsupported alg {alg}")


class KeyStore:
    """Keys in memory, with their schedule.

    Rotation never breaks a relying party: a new key (status `next`) is published in the JWKS
    for `KEY_PUBLISH_SECONDS` before it signs (JWKS caches expire first), and a key that stopped
    signing stays published for `KEY_RETAIN_SECONDS` (longer than any token it signed lives).
    The schedule is evaluated at signing time, so a running process switches on time.
    """

    def __init__(self) -> None:
        self._private: dict[str, Any] = {}
        # Per alg: (takes over at, kid), oldest first.
        self._schedule: dict[str, list[tuple[datetime, str]]] = {}
        self._retire_after: dict[str, datetime] = {}
        self._public: KeySet = KeySet([])
        self._loaded_at = 0.0

    async def load(self, session: AsyncSession) -> None:
        rows = (await session.execute(sa.select(SigningKey))).scalars().all()
        private: dict[str, Any] = {}
        schedule: dict[str, list[tuple[datetime, str]]] = {}
        for row in sorted(rows, key=lambda r: r.created_at):
            if row.status == "retired":
                continue  # retired by an operator: neither signs nor verifies
            jwk = json.loads(decrypt_pii(row.private_jwk_encrypted, context="signing-key"))
            key = ECKey.import_key(jwk) if row.alg == "ES256" else RSAKey.import_key(jwk)
            private[row.kid] = key
            takes_over = (
                row.created_at
                if row.status == "active"
                else row.created_at + timedelta(seconds=KEY_PUBLISH_SECONDS)
            )
            schedule.setdefault(row.alg, []).append((takes_over, row.kid))
        retire_after: dict[str, datetime] = {}
        for entries in schedule.values():
            entries.sort()
            for (_, kid), (successor_from, _) in itertools.pairwise(entries):
                retire_after[kid] = successor_from + timedelta(seconds=KEY_RETAIN_SECONDS)
        self._private, self._schedule, self._retire_after = private, schedule, retire_after
        self._public = KeySet(list(private.values()))
        self._loaded_at = time.monotonic()

    async def ensure(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Make sure a signing key exists for each alg (first start)."""
        async with sessions() as session, session.begin():
            await _lock_for_ensure(session)
            await self.load(session)
            for alg in SUPPORTED_ALGS:
                if alg not in self._schedule:
                    session.add(new_key_row(alg))
            await session.flush()
            await self.load(session)

    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at > _CACHE_SECONDS

    def signing_key(self, alg: str) -> tuple[str, Any]:
        now = clock.now()
        entries = self._schedule[alg]
        kid = entries[0][1]
        for takes_over, candidate in entries:
            if takes_over <= now:
                kid = candidate  # the newest key whose time has come
        return kid, self._private[kid]

    def verification_key(self, kid: str) -> Any | None:
        return self._private.get(kid)

    def jwks_keyset(self) -> KeySet:
        """Every key still valid for verification, for tokens this service signed (any alg)."""
        return self._public

    def published(self) -> list[Any]:
        now = clock.now()
        return [
            key
            for kid, key in self._private.items()
            if kid not in self._retire_after or self._retire_after[kid] > now
        ]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.published()]}


async def _lock_for_ensure(session: AsyncSession) -> None:
    """Serialize `ensure` across processes until commit.

    Workers started together on a fresh database (`serve --workers 2`) would otherwise each make
    their own key; a token signed by one would then be unknown to the other (401) for up to a
    minute. Holding a lock, the second worker sees the first one's committed key and reuses it.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_ENSURE_LOCK_ID)))
    else:
        # SQLite: any UPDATE, even of no row, takes the database write lock until commit.
        await session.execute(
            sa.update(SigningKey).where(sa.false()).values(status=SigningKey.status)
        )


def new_key_row(alg: str) -> SigningKey:
    key = _generate(alg)
    return SigningKey(
        kid=key.kid,  # type: ignore[arg-type]  # joserfc: optional, but auto_kid=True sets it
        alg=alg,
        private_jwk_encrypted=encrypt_pii(
            json.dumps(key.as_dict(private=True)), context="signing-key"
        ),
        public_jwk=key.as_dict(private=False),
    )


async def rotate(session: AsyncSession, alg: str) -> SigningKey:
    """Add the next key: published at once, signing after KEY_PUBLISH_SECONDS; the current key
    keeps signing until then and stays published KEY_RETAIN_SECONDS longer."""
    row = new_key_row(alg)
    row.status = "next"
    session.add(row)
    await session.flush()
    return row


key_store = KeyStore()
