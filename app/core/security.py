"""Cryptographic plumbing: password hashing, personal-data encryption, blind indexes, secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.core.config import get_settings


@lru_cache
def _hasher() -> tuple[PasswordHasher, str]:
    """argon2id with the configured cost (default: RFC 9106's second profile, 64 MiB, 3 passes),
    and a hash to verify against when the account does not exist, so timing does not tell."""
    settings = get_settings()
    hasher = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    return hasher, hasher.hash("not-a-real-password-" + secrets.token_hex(8))


# Argon2 takes ~64 MiB each: cap concurrent hashes so a login storm cannot exhaust memory.
_hash_slots = anyio.CapacityLimiter(4)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher()[0].hash, password, limiter=_hash_slots)


async def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()

    def check() -> bool:
        try:
            return hasher.verify(password_hash or dummy, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check, limiter=_hash_slots)


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher()[0].check_needs_rehash(password_hash)


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _pii_key() -> bytes:
    key = _b64decode(get_settings().pii_encryption_key)
    if len(key) != 32:
        raise ValueError("PII_ENCRYPTION_KEY must be 32 bytes, base64url encoded")
    return key


def encrypt_pii(plaintext: str, *, context: str) -> str:
    """AES-256-GCM; `context` (e.g. "cccd") is bound as associated data. Output: v1.<b64>."""
    nonce = os.urandom(12)
    sealed = AESGCM(_pii_key()).encrypt(nonce, plaintext.encode(), context.encode())
    return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def decrypt_pii(token: str, *, context: str) -> str:
    version, _, payload = token.partition(".")
    if version != "v1":
        raise ValueError("unknown ciphertext version")
    raw = _b64decode(payload)
    return AESGCM(_pii_key()).decrypt(raw[:12], raw[12:], context.encode()).decode()


def blind_index(value: str, *, context: str) -> str:
    """A keyed hash that finds equal values without storing them (HMAC-SHA256)."""
    key = get_settings().pii_blind_index_key.encode()
    return hmac.new(key, f"{context}:{value}".encode(), hashlib.sha256).hexdigest()


def keyed_hash(value: str, *, purpose: str) -> str:
    """Fast keyed hash for high-entropy server-made secrets (tokens, OTP codes bound to phone)."""
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def random_token(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def random_digits(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))
