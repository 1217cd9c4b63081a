"""The key store: asymmetric signing keys in the database (private part encrypted), cached.

Access tokens use ES256 (fast to sign and verify); the OpenID Connect provider also keeps an RS256
key, which every relying party must support for ID tokens.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import clock
from app.core.security import decrypt_pii, encrypt_pii
from app.tokens.models import SigningKey

SUPPORTED_ALGS = ("ES256", "RS256")
_CACHE_SECONDS = 60.0


def _generate(alg: str) -> ECKey | RSAKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True, auto_kid=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True, auto_kid=True)
    raise ValueError(f"unsupported alg {alg}")


class KeyStore:
    def __init__(self) -> None:
        self._private: dict[str, Any] = {}
        self._active: dict[str, str] = {}
        self._public: KeySet = KeySet([])
        self._loaded_at = 0.0

    async def load(self, session: AsyncSession) -> None:
        rows = (await session.execute(sa.select(SigningKey))).scalars().all()
        private: dict[str, Any] = {}
        active: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: r.created_at):
            jwk = json.loads(decrypt_pii(row.private_jwk_encrypted, context="signing-key"))
            key = ECKey.import_key(jwk) if row.alg == "ES256" else RSAKey.import_key(jwk)
            private[row.kid] = key
            if row.status == "active":
                active[row.alg] = row.kid  # the newest active key of each alg signs
        self._private, self._active = private, active
        self._public = KeySet([k for k in private.values()])
        self._loaded_at = time.monotonic()

    async def ensure(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Make sure an active key exists for each alg (first start, or after `keys rotate`)."""
        async with sessions() as session, session.begin():
            await self.load(session)
            for alg in SUPPORTED_ALGS:
                if alg not in self._active:
                    session.add(new_key_row(alg))
            await session.flush()
            await self.load(session)

    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at > _CACHE_SECONDS

    def signing_key(self, alg: str) -> tuple[str, Any]:
        kid = self._active[alg]
        return kid, self._private[kid]

    def verification_key(self, kid: str) -> Any | None:
        return self._private.get(kid)

    def jwks_keyset(self) -> KeySet:
        """Every published key, for verifying tokens this service signed (any alg)."""
        return self._public

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self._private.values()]}


def new_key_row(alg: str) -> SigningKey:
    key = _generate(alg)
    return SigningKey(
        kid=key.kid,
        alg=alg,
        private_jwk_encrypted=encrypt_pii(json.dumps(key.as_dict(private=True)),
                                          context="signing-key"),
        public_jwk=key.as_dict(private=False),
    )


async def rotate(session: AsyncSession, alg: str) -> SigningKey:
    """Add a new active key; older keys stay for verification until retired by `retire_before`."""
    await session.execute(
        sa.update(SigningKey).where(SigningKey.alg == alg, SigningKey.status == "active")
        .values(status="retired", retired_at=clock.now())
    )
    row = new_key_row(alg)
    session.add(row)
    await session.flush()
    return row


key_store = KeyStore()
