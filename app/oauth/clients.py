"""Partner applications (OAuth clients): registration by city admins, and the view authlib uses.

Client secrets are made here, 32 random bytes, shown once and stored as a keyed hash
(HMAC-SHA256): high-entropy secrets need no password hash, and a fast constant-time compare keeps
`client_credentials` cheap (a PBKDF2/argon2 check would cap it at a few requests a second).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from joserfc.errors import JoseError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import audit
from app.core.audit import AuditContext
from app.core.errors import AppError
from app.core.security import constant_time_equals, keyed_hash, random_token
from app.oauth import errors, jose_rules, outbound
from app.oauth.models import OAuthClient

SCOPES = ("openid", "profile", "phone", "address", "cccd", "offline_access")
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
TYPES = ("public", "confidential")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def hash_secret(secret: str) -> str:
    return keyed_hash(secret, purpose="oauth-client-secret")


def _check_uri(uri: str, what: str) -> str:
    """https, http on loopback (RFC 8252 native apps), or a private-use scheme like
    `vn.example.app:/callback`; never a fragment."""
    parts = urlsplit(uri)
    loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    ok = (
        (parts.scheme == "https" and parts.hostname)
        or (parts.scheme == "http" and loopback)
        or ("." in parts.scheme and parts.scheme not in {"http", "https"})
    )
    if not ok or parts.fragment:
        raise AppError(
            errors.CLIENT_INVALID, params={"reason": f"{what} {uri!r}"}, extra={"field": what}
        )
    return uri


def _check_outbound_uri(uri: str, what: str) -> str:
    """A URL the provider itself calls (jwks_uri, backchannel_logout_uri, sector_identifier_uri):
    a redirect-style URI that must not name an internal address (outbound.check_target; the
    address it resolves to is checked again at every call)."""
    _check_uri(uri, what)
    try:
        outbound.check_target(uri)
    except outbound.OutboundRefused:
        raise AppError(
            errors.CLIENT_INVALID,
            params={"reason": f"{what} {uri!r} names an internal address"},
            extra={"field": what},
        ) from None
    return uri


def _check_jwks(jwks: dict[str, Any]) -> None:
    """A JWK set with at least one key strong enough to verify a client assertion."""
    try:
        jose_rules.usable_key_set(jwks)
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        raise AppError(
            errors.CLIENT_INVALID,
            params={"reason": "jwks must hold an RSA key of 2048+ bits or an EC P-256 key"},
            extra={"field": "jwks"},
        ) from exc


async def verified_sector(sector_identifier_uri: str, redirect_uris: list[str]) -> str:
    """OpenID Connect Core 8.1: the https `sector_identifier_uri` answers a JSON array holding
    every redirect URI of the client; the sector is then its host. Fetched at registration."""
    parts = urlsplit(sector_identifier_uri)
    local_test = (
        parts.scheme == "http"
        and parts.hostname in {"127.0.0.1", "::1", "localhost"}
        and outbound.private_targets_allowed()
    )  # a local fake in development and tests
    if not (parts.scheme == "https" or local_test) or not parts.hostname:
        raise AppError(errors.SECTOR_INVALID, params={"reason": "it must be an https URL"})
    _check_outbound_uri(sector_identifier_uri, "sector-identifier-uri")
    try:
        listed = await outbound.get_json(sector_identifier_uri)
    except (outbound.OutboundFailed, outbound.OutboundRefused) as exc:
        raise AppError(
            errors.SECTOR_INVALID, params={"reason": f"it cannot be fetched ({exc})"}
        ) from None
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        raise AppError(errors.SECTOR_INVALID, params={"reason": "it is not a JSON array of URIs"})
    missing = [u for u in redirect_uris if u not in listed]
    if missing:
        raise AppError(
            errors.SECTOR_INVALID, params={"reason": f"it does not list {', '.join(missing)}"}
        )
    return parts.hostname.lower()


def own_sector(client_id: str) -> str:
    """The sector of a client without a verified sector_identifier_uri: the client alone, so no
    two clients share pairwise subjects by accident (loopback hosts, private-use schemes)."""
    return f"client:{client_id}"


@dataclass
class NewClient:
    client: OAuthClient
    client_secret: str | None


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    redirect_uris: list[str],
    client_type: str,
    auth_method: str,
    scope: str = "openid",
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    min_loa: int = 0,
    backchannel_logout_uri: str | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None,
    first_party: bool = False,
    allow_cccd: bool = False,
    require_par: bool = False,
    require_dpop: bool = False,
    sector_identifier_uri: str | None = None,
    id_token_alg: str = "RS256",  # noqa: S107 (an algorithm name)
    ctx: AuditContext | None = None,
) -> NewClient:
    def invalid(reason: str) -> AppError:
        return AppError(errors.CLIENT_INVALID, params={"reason": reason})

    if client_type not in TYPES:
        raise invalid("type")
    if auth_method not in AUTH_METHODS:
        raise invalid("auth-method")
    if (client_type == "public") != (auth_method == "none"):
        raise invalid("public clients use auth-method none, confidential clients authenticate")
    if auth_method == "private_key_jwt" and not (jwks or jwks_uri):
        raise invalid("private_key_jwt needs --jwks-uri or --jwks-file")
    scopes = scope_to_list(scope) or []
    if "openid" not in scopes or any(s not in SCOPES for s in scopes):
        raise invalid(f"scope must include openid and only {' '.join(SCOPES)}")
    if id_token_alg not in ("RS256", "ES256"):
        raise invalid("id-token-alg must be RS256 or ES256")
    if not 0 <= min_loa <= 2:
        raise invalid("min-loa must be 0, 1 or 2")
    grants = grant_types or ["authorization_code", "refresh_token"]
    if client_type == "confidential" and grant_types is None:
        grants = [*grants, "client_credentials"]
    if any(g not in GRANT_TYPES for g in grants):
        raise invalid(f"grant types are {' '.join(GRANT_TYPES)}")
    if "client_credentials" in grants and client_type == "public":
        raise invalid("public clients cannot use client_credentials")
    if not redirect_uris and "authorization_code" in grants:
        raise invalid("at least one redirect-uri")
    uris = [_check_uri(u, "redirect-uri") for u in redirect_uris]
    logout_uris = [
        _check_uri(u, "post-logout-redirect-uri") for u in post_logout_redirect_uris or []
    ]
    if backchannel_logout_uri:
        _check_outbound_uri(backchannel_logout_uri, "backchannel-logout-uri")
    if jwks_uri:
        _check_outbound_uri(jwks_uri, "jwks-uri")
    if jwks is not None:
        _check_jwks(jwks)
    client_id = "tn_" + secrets.token_hex(12)
    sector = (
        await verified_sector(sector_identifier_uri, uris)
        if sector_identifier_uri
        else own_sector(client_id)
    )
    secret = (
        random_token("tns_", 32)
        if client_type == "confidential" and auth_method.startswith("client_secret")
        else None
    )
    client = OAuthClient(
        id=client_id,
        name=name,
        client_type=client_type,
        auth_method=auth_method,
        secret_hash=hash_secret(secret) if secret else None,
        redirect_uris=uris,
        post_logout_redirect_uris=logout_uris,
        grant_types=grants,
        scope=" ".join(dict.fromkeys(scopes)),
        min_loa=min_loa,
        first_party=first_party,
        allow_cccd=allow_cccd,
        sector_identifier=sector,
        sector_identifier_uri=sector_identifier_uri or None,
        jwks=jwks,
        jwks_uri=jwks_uri,
        backchannel_logout_uri=backchannel_logout_uri,
        require_par=require_par,
        require_dpop=require_dpop,
        id_token_alg=id_token_alg,
    )
    session.add(client)
    await session.flush()
    await audit.record(
        session,
        ctx,
        "oauth.client_created",
        resource=f"oauth_client:{client.id}",
        details={
            "name": name,
            "type": client_type,
            "auth_method": auth_method,
            "scope": client.scope,
        },
    )
    return NewClient(client, secret)


# ---------------------------------------------------------------- changes by city admins

UNSET: Any = object()  # "not given" (None clears an optional setting)
STATUSES = ("active", "disabled")


async def find_client(session: AsyncSession, client_id: str) -> OAuthClient:
    """Any client, active or disabled (administration); `oauth.client_not_found` otherwise."""
    row = await session.get(OAuthClient, client_id) if len(client_id) <= 100 else None
    if row is None:
        raise AppError(errors.CLIENT_NOT_FOUND)
    return row


def describe(row: OAuthClient) -> dict[str, Any]:
    """A client as city admins see it (the admin API and the CLI): never its secret."""
    return {
        "client_id": row.id,
        "name": row.name,
        "type": row.client_type,
        "auth_method": row.auth_method,
        "status": row.status,
        "scope": row.scope,
        "redirect_uris": row.redirect_uris,
        "post_logout_redirect_uris": row.post_logout_redirect_uris,
        "grant_types": row.grant_types,
        "min_loa": row.min_loa,
        "backchannel_logout_uri": row.backchannel_logout_uri,
        "jwks": row.jwks,
        "jwks_uri": row.jwks_uri,
        "first_party": row.first_party,
        "allow_cccd": row.allow_cccd,
        "require_par": row.require_par,
        "require_dpop": row.require_dpop,
        "sector_identifier_uri": row.sector_identifier_uri,
        "created_at": row.created_at,
    }


async def list_clients(session: AsyncSession) -> list[OAuthClient]:
    rows = await session.execute(sa.select(OAuthClient).order_by(col(OAuthClient.created_at)))
    return list(rows.scalars())


async def update_client(
    session: AsyncSession,
    client_id: str,
    *,
    ctx: AuditContext | None = None,
    name: str | None = None,
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    scope: str | None = None,
    min_loa: int | None = None,
    backchannel_logout_uri: str | None = UNSET,
    jwks: dict[str, Any] | None = UNSET,
    jwks_uri: str | None = UNSET,
) -> OAuthClient:
    """Change what a city admin may change after registration; unchanged settings stay. The
    client's type, authentication method and grants are fixed (register a new client instead)."""
    row = await find_client(session, client_id)

    def invalid(reason: str) -> AppError:
        return AppError(errors.CLIENT_INVALID, params={"reason": reason})

    changes: dict[str, Any] = {}
    if name is not None:
        if not name.strip() or len(name) > 200:
            raise invalid("name")
        changes["name"] = name
    if redirect_uris is not None:
        if not redirect_uris and "authorization_code" in row.grant_types:
            raise invalid("at least one redirect-uri")
        changes["redirect_uris"] = [_check_uri(u, "redirect-uri") for u in redirect_uris]
        if row.sector_identifier_uri:  # every redirect URI stays listed there (OIDC Core 8.1)
            await verified_sector(row.sector_identifier_uri, changes["redirect_uris"])
    if post_logout_redirect_uris is not None:
        changes["post_logout_redirect_uris"] = [
            _check_uri(u, "post-logout-redirect-uri") for u in post_logout_redirect_uris
        ]
    if scope is not None:
        scopes = scope_to_list(scope) or []
        if "openid" not in scopes or any(s not in SCOPES for s in scopes):
            raise invalid(f"scope must include openid and only {' '.join(SCOPES)}")
        changes["scope"] = " ".join(dict.fromkeys(scopes))
    if min_loa is not None:
        if not 0 <= min_loa <= 2:
            raise invalid("min-loa must be 0, 1 or 2")
        changes["min_loa"] = min_loa
    if backchannel_logout_uri is not UNSET:
        if backchannel_logout_uri:
            _check_outbound_uri(backchannel_logout_uri, "backchannel-logout-uri")
        changes["backchannel_logout_uri"] = backchannel_logout_uri or None
    if jwks is not UNSET:
        if jwks is not None and not isinstance(jwks.get("keys"), list):
            raise invalid('jwks must be a JWK set ({"keys": [...]})')
        if jwks is not None:
            _check_jwks(jwks)
        changes["jwks"] = jwks
    if jwks_uri is not UNSET:
        if jwks_uri:
            _check_outbound_uri(jwks_uri, "jwks-uri")
        changes["jwks_uri"] = jwks_uri or None
    if row.auth_method == "private_key_jwt" and not (
        changes.get("jwks", row.jwks) or changes.get("jwks_uri", row.jwks_uri)
    ):
        raise invalid("private_key_jwt needs --jwks-uri or --jwks-file")
    changed = sorted(k for k, v in changes.items() if getattr(row, k) != v)
    for key, value in changes.items():
        setattr(row, key, value)
    await session.flush()
    forget_client(row.id)
    await audit.record(
        session,
        ctx,
        "oauth.client_updated",
        resource=f"oauth_client:{row.id}",
        details={"changed": changed},
    )
    return row


async def set_client_status(
    session: AsyncSession,
    client_id: str,
    status: str,
    *,
    ctx: AuditContext | None = None,
    reason: str | None = None,
) -> OAuthClient:
    """Disable (or enable again) a client. While disabled it gets `invalid_client` at every
    endpoint, and its tokens are refused by UserInfo and introspect as inactive; nothing is
    deleted, so enabling it again restores the tokens that have not expired meanwhile.
    Another process notices within CLIENT_CACHE_SECONDS."""
    if status not in STATUSES:
        raise AppError(errors.CLIENT_INVALID, params={"reason": "status"})
    row = await find_client(session, client_id)
    before = row.status
    row.status = status
    await session.flush()
    forget_client(row.id)
    action = "oauth.client_disabled" if status == "disabled" else "oauth.client_enabled"
    await audit.record(
        session,
        ctx,
        action,
        resource=f"oauth_client:{row.id}",
        reason=reason,
        details={"previous_status": before},
    )
    return row


async def rotate_secret(
    session: AsyncSession, client_id: str, *, ctx: AuditContext | None = None
) -> NewClient:
    """A new server-made secret, shown once; the previous one stops working at once (in other
    processes within CLIENT_CACHE_SECONDS)."""
    row = await find_client(session, client_id)
    if not row.auth_method.startswith("client_secret"):
        raise AppError(
            errors.CLIENT_INVALID, params={"reason": f"a {row.auth_method} client has no secret"}
        )
    secret = random_token("tns_", 32)
    row.secret_hash = hash_secret(secret)
    await session.flush()
    forget_client(row.id)
    await audit.record(
        session, ctx, "oauth.client_secret_rotated", resource=f"oauth_client:{row.id}"
    )
    return NewClient(row, secret)


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    row = await session.get(OAuthClient, client_id)
    return row if row is not None and row.status == "active" else None


# A short in-process cache of clients: the token and introspection endpoints authenticate one on
# every call. A change made by this process (update, disable, new secret) counts at once; one made
# by another process (the CLI, another worker) within CLIENT_CACHE_SECONDS: that is how long a
# disabled client, or a replaced secret, may keep working there.
CLIENT_CACHE_SECONDS = 10.0
_cache: dict[str, tuple[float, Client | None]] = {}


async def client_view(session: AsyncSession, client_id: str) -> Client | None:
    now = time.monotonic()
    hit = _cache.get(client_id)
    if hit is not None and now - hit[0] < CLIENT_CACHE_SECONDS:
        return hit[1]
    row = await get_client(session, client_id)
    if row is not None:
        # Out of the session: a rollback of this request must not expire the cached copy.
        session.expunge(row)
    view = Client(row) if row else None
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[client_id] = (now, view)
    return view


def forget_client(client_id: str) -> None:
    _cache.pop(client_id, None)


async def clients_named(session: AsyncSession, ids: list[str]) -> dict[str, OAuthClient]:
    rows = await session.execute(sa.select(OAuthClient).where(col(OAuthClient.id).in_(ids)))
    return {c.id: c for c in rows.scalars()}


def load_jwks_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return data if "keys" in data else {"keys": [data]}


class Client(ClientMixin):
    """authlib's view of a client: a snapshot of the row, safe to read from a worker thread."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.client_id = row.id
        self.scopes = set(scope_to_list(row.scope) or [])
        if not row.allow_cccd:
            self.scopes.discard("cccd")  # never even asked for on the consent page

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is always required: we never guess

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match, never a prefix

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.row.secret_hash:
            return False
        return constant_time_equals(hash_secret(client_secret), self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == "client_assertion_jwt":
            method = "private_key_jwt"
        if method == "none" and endpoint == "introspection":
            return False  # only authenticated resource servers and clients introspect
        return method == self.row.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types
