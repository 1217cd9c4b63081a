"""A private_key_jwt client's keys from its registered `jwks_uri`, fetched so that a slow or dead
partner server cannot stall the provider.

- Keys are fetched before the request touches the database (`prefetch_for_assertion`, called
  first thing by the endpoints that authenticate clients), never while a connection or a worker
  thread is held; authlib's hook only reads what was fetched (`cached`), it never fetches.
- One fetch at a time per URL (single-flight): concurrent requests naming the same client wait
  for the fetch under way instead of starting their own.
- A short timeout and a bounded body (app.oauth.outbound, which also applies the SSRF rule).
- A failure opens the circuit: no fetch from that URL for OAUTH_JWKS_RETRY_AFTER_SECONDS,
  doubling with each further failure up to OAUTH_JWKS_RETRY_MAX_SECONDS (a negative cache);
  meanwhile the last good keys, if any, are still used.
- A request fetches at most once, and only for an assertion that could be valid (well-formed,
  `iss` = `sub`, not expired): junk costs no outbound call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from app.core.db import session_factory
from app.core.logging import get_logger
from app.oauth import outbound
from app.oauth.clients import Client, client_view
from app.oauth.config import get_oauth_settings

log = get_logger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class _Entry:
    keys: dict[str, Any] | None = None  # the last good set
    fetched_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0  # the circuit is open (no fetch) until then
    inflight: asyncio.Future[None] | None = None


_entries: dict[str, _Entry] = {}


def cached(uri: str) -> dict[str, Any] | None:
    """The last good keys fetched from `uri` (no network)."""
    entry = _entries.get(uri)
    return entry.keys if entry else None


# A key id the cached set lacks (the partner rotated its keys) fetches again, at most this often.
UNKNOWN_KID_REFETCH_SECONDS = 60.0


def _has_kid(keys: dict[str, Any], kid: str) -> bool:
    return any(isinstance(k, dict) and k.get("kid") == kid for k in keys.get("keys", []))


async def keys_for(uri: str, kid: str | None = None) -> dict[str, Any] | None:
    """The keys at `uri`: cached while fresh (and holding `kid` when one is named), else fetched
    once for all concurrent callers."""
    settings = get_oauth_settings()
    entry = _entries.setdefault(uri, _Entry())
    now = time.monotonic()
    age = now - entry.fetched_at
    if (
        entry.keys is not None
        and age < settings.jwks_cache_seconds
        and (kid is None or _has_kid(entry.keys, kid) or age < UNKNOWN_KID_REFETCH_SECONDS)
    ):
        return entry.keys
    if entry.inflight is None:
        if now < entry.retry_at:
            return entry.keys  # circuit open: the last good keys, or none
        entry.inflight = asyncio.ensure_future(_fetch(uri, entry))
    # shield: a cancelled waiter must not cancel the fetch the others wait for
    await asyncio.shield(entry.inflight)
    return entry.keys


async def _fetch(uri: str, entry: _Entry) -> None:
    settings = get_oauth_settings()
    try:
        data = await outbound.get_json(uri)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise outbound.OutboundFailed("not a JWK set")
    except (outbound.OutboundFailed, outbound.OutboundRefused) as exc:
        entry.failures += 1
        delay = min(
            settings.jwks_retry_after_seconds * 2 ** (entry.failures - 1),
            settings.jwks_retry_max_seconds,
        )
        entry.retry_at = time.monotonic() + delay
        log.warning(
            "oauth_jwks_fetch_failed",
            uri=uri,
            error=str(exc) or type(exc).__name__,
            failures=entry.failures,
            retry_in_seconds=delay,
        )
    else:
        entry.keys, entry.fetched_at = data, time.monotonic()
        entry.failures, entry.retry_at = 0, 0.0
    finally:
        entry.inflight = None
    if len(_entries) > 10_000:
        _entries.clear()


def _claims(assertion: str) -> dict[str, Any] | None:
    """A client assertion's claims, unverified: only to decide whether keys are worth fetching."""
    if assertion.count(".") != 2 or len(assertion) > 8192:
        return None
    try:
        segment = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _kid(assertion: str) -> str | None:
    try:
        segment = assertion.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


async def prefetch_for_assertion(pairs: list[tuple[str, str]]) -> None:
    """Before the request uses the database: fetch (or find cached) the keys of the client a
    `private_key_jwt` assertion names, so authlib's hook finds them without a network call.
    The client is read in a short session of its own, given back before any fetch."""
    data = dict(reversed(pairs))
    assertion = data.get("client_assertion")
    if data.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
        return
    claims = _claims(assertion)
    if claims is None:
        return
    sub, exp = claims.get("sub"), claims.get("exp")
    if not isinstance(sub, str) or not sub or len(sub) > 100 or claims.get("iss") != sub:
        return
    if not isinstance(exp, int | float) or exp < time.time():
        return
    async with session_factory()() as session:
        view: Client | None = await client_view(session, sub)
    if view is None or view.row.auth_method != "private_key_jwt":
        return
    if view.row.jwks or not view.row.jwks_uri:
        return
    await keys_for(view.row.jwks_uri, kid=_kid(assertion))
