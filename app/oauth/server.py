"""authlib's authorization server, on FastAPI.

authlib's server hooks are synchronous, so authlib runs once per request, inline on the event
loop: the router reads beforehand what its hooks will ask for, and its writes are deferred until
it returns (`Bridge`). authlib's own work there is CPU only (signatures, a keyed hash), and there
is one database driver.
"""

from __future__ import annotations

import contextvars
import functools
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, clock
from app.core.audit import AuditContext
from app.core.config import get_settings
from app.oauth import client_keys, jose_rules, replay, service
from app.oauth.clients import Client
from app.oauth.service import Grantee, GrantRefused

T = TypeVar("T")

CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ANY_CLIENT_AUTH = [*CLIENT_AUTH, "none"]


class ClientReplayed(Exception):  # a refusal, not a fault
    """A client assertion whose `jti` was used before: the answer becomes invalid_client."""


@dataclass
class Bridge:
    """One request's link from authlib's hooks to its database session.

    authlib's hooks are synchronous, so authlib runs once, inline, on what the router read
    before (`router._prefetch`: the clients, the code or refresh token, the token being
    introspected); its writes are deferred and run after it returns, in the request's
    transaction (`flush_deferred`), and a deferred step that refuses replaces the answer.
    """

    db: AsyncSession
    ctx: AuditContext
    user_agent: str | None = None
    dpop_jkt: str | None = None
    keep_writes: bool = False  # a refusal that keeps its writes (a revoked family)
    clients: dict[str, Client | None] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)
    refresh: dict[tuple[str, str], Any] = field(default_factory=dict)
    codes: dict[tuple[str, str], tuple[Any, bool]] = field(default_factory=dict)
    users: dict[Any, Any] = field(default_factory=dict)  # the accounts behind those codes
    deferred: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def defer(self, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Run after authlib returns, on the loop, in the request's transaction."""
        self.deferred.append(functools.partial(func, self.db, *args, **kwargs))

    async def flush_deferred(self) -> None:
        for work in self.deferred:
            await work()
        self.deferred.clear()


_bridge: contextvars.ContextVar[Bridge] = contextvars.ContextVar("oauth_bridge")


def bridge() -> Bridge:
    return _bridge.get()


def run(b: Bridge, func: Callable[[], T]) -> T:
    """Run an authlib call once, with `b` as its hooks' bridge."""
    token = _bridge.set(b)
    try:
        return func()
    finally:
        _bridge.reset(token)


class Request(OAuth2Request):
    """An OAuth2Request from a body already read on the event loop."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.query_params = _first(query)
        self.form_params = _first(form)
        self.payload = _Payload(form if method == "POST" else query)

    @property
    def args(self) -> dict[str, str]:
        return self.query_params

    @property
    def form(self) -> dict[str, str]:
        return self.form_params


class _Payload(OAuth2Payload):
    """The request's parameters as authlib reads them: the first value of each (`data`), and
    all of them (`datalist`, where authlib looks for repeated parameters)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.first = _first(pairs)
        self.every: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self.every[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self.first

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self.every


def _first(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


class S256Only(CodeChallenge):
    """PKCE for every client: S256 only, and refused at /authorize when missing (authlib's
    `required=True` only checks at the token endpoint, and accepts `plain`)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's attribute)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with S256.", redirect_uri=redirect_uri
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256.", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH

    def save_authorization_code(self, code: str, request: Any) -> None:
        b = bridge()
        b.defer(
            service.save_code,
            code,
            client_id=request.client.client_id,
            grantee=request.user,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            params=dict(request.payload.data),
        )

    def query_authorization_code(self, code: str, client: Client) -> Any:
        b = bridge()
        row, revoked = b.codes.get((code, client.client_id), (None, False))
        if revoked:
            b.keep_writes = True  # keep the revocation although the request fails
        return _CodeView(row) if row else None

    def delete_authorization_code(self, authorization_code: Any) -> None:
        pass  # spent atomically when the token is issued

    def authenticate_user(self, authorization_code: Any) -> Grantee:
        row = authorization_code.row
        return Grantee(
            user_id=row.user_id,
            browser_session_id=row.browser_session_id,
            auth_time=row.auth_time,
            acr=row.acr,
            code=row,
        )


class _CodeView:
    def __init__(self, row: Any) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Any:
        b = bridge()
        client = self.request.client
        grantee = b.refresh.get((refresh_token, client.client_id))
        return _RefreshView(grantee) if grantee else None

    def authenticate_user(self, refresh_token: Any) -> Grantee:
        return refresh_token.grantee

    def revoke_old_credential(self, refresh_token: Any) -> None:
        pass  # rotation spent it


class _RefreshView:
    def __init__(self, grantee: Grantee) -> None:
        self.grantee = grantee

    def check_client(self, client: Client) -> bool:
        return (
            self.grantee.session is not None and self.grantee.session.client_id == client.client_id
        )

    def get_scope(self) -> str:
        return self.grantee.session.scope if self.grantee.session else ""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH


class PrivateKeyJWT(JWTBearerClientAssertion):
    """private_key_jwt (RFC 7523): the client's registered JWKS verifies its assertion, whose
    `jti` may be used once."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        issuer = get_settings().issuer
        return [
            issuer,
            f"{issuer}/oauth/token",
            f"{issuer}/oauth/par",
            f"{issuer}/oauth/introspect",
            f"{issuer}/oauth/revoke",
        ]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        exp = int(claims.get("exp", 0))
        expires = clock.now() + timedelta(seconds=max(60, exp - int(clock.now().timestamp()) + 60))
        # Checked and remembered after authlib returns, before any other write (see `Bridge`).
        bridge().defer(_first_use, f"pkjwt:{claims['sub']}:{jti}"[:100], expires_at=expires)
        return True

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        """authlib's check, with the algorithms the discovery document advertises (joserfc's
        default list lacks PS256): the key is the client's, the algorithm one of these."""
        try:
            token = jwt.decode(
                assertion, resolve_key, algorithms=list(jose_rules.CLIENT_ASSERTION_ALGS)
            )
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims

    def resolve_client_public_key(self, client: Client) -> KeySet:
        """The client's registered keys, or those fetched from its jwks_uri before the request
        touched the database (app.oauth.client_keys): never a network call here."""
        jwks = client.row.jwks
        if not jwks and client.row.jwks_uri:
            jwks = client_keys.cached(client.row.jwks_uri)
        if not jwks:
            raise InvalidClientError(description="The client's keys are not available.")
        try:
            return jose_rules.usable_key_set(jwks)
        except (ValueError, KeyError, TypeError, JoseError):
            raise InvalidClientError(description="The client's keys are unusable.") from None


async def _first_use(db: AsyncSession, key: str, *, expires_at: Any) -> None:
    if not await replay.first_use(db, key, expires_at=expires_at):
        raise ClientReplayed


def _query_token(token_string: str, token_type_hint: str | None) -> Any:
    return bridge().tokens.get(token_string)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ANY_CLIENT_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token: Any, request: Any) -> None:
        b = bridge()
        b.defer(service.revoke, token, b.ctx)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _query_token(token_string, token_type_hint)

    def check_permission(self, token: Any, client: Client, request: Any) -> bool:
        # The client the token was issued to, or a first-party resource server of the city.
        return token.client_id == client.client_id or client.row.first_party

    def introspect_token(self, token: Any) -> dict[str, Any]:
        return token.payload  # read with the token (router._prefetch)


class Server(AuthorizationServer):
    def __init__(self) -> None:
        super().__init__(scopes_supported=None)
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT())

    def query_client(self, client_id: str) -> Client | None:
        return bridge().clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        pass  # saved by the token generator, through app.tokens

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # built on the event loop by the router

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, dict]:
        return status, body, dict(headers)

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        b = bridge()
        try:
            if grant_type == "authorization_code":
                account = b.users.get(user.user_id)
                answer, issue = service.code_answer(
                    client.row,
                    user,
                    account,
                    include_refresh=include_refresh_token,
                    jkt=b.dpop_jkt,
                )
                b.defer(
                    service.commit_code,
                    client.row,
                    user,
                    account,
                    issue,
                    jkt=b.dpop_jkt,
                    ctx=b.ctx,
                    user_agent=b.user_agent,
                )
                return answer
            if grant_type == "refresh_token":
                answer = service.refresh_answer(client.row, user, scope, jkt=b.dpop_jkt)
                b.defer(
                    service.commit_refresh, client.row, user, answer["refresh_token"], ctx=b.ctx
                )
                return answer
            if grant_type == "client_credentials":
                if client.row.require_dpop and not b.dpop_jkt:
                    raise GrantRefused("This client must use DPoP.")
                answer, _ = service.issue_client_credentials(
                    client.row, client.get_allowed_scope(scope), b.dpop_jkt
                )
                # No row is written for this token: its audit entry is the request's write.
                b.defer(
                    audit.record,
                    b.ctx,
                    "oauth.token_issued",
                    resource=f"oauth_client:{client.client_id}",
                    details={"grant_type": "client_credentials", "scope": answer["scope"]},
                )
                return answer
        except GrantRefused as exc:
            b.keep_writes = b.keep_writes or exc.commit
            raise InvalidGrantError(exc.description) from None
        raise InvalidGrantError("Unsupported grant.")


server = Server()


def json_body(body: Any) -> bytes:
    return (
        json.dumps(body, ensure_ascii=False).encode()
        if not isinstance(body, bytes | str)
        else (body.encode() if isinstance(body, str) else body)
    )
