"""HTTP endpoints of the OpenID Connect provider. The protocol core is authlib's (see server.py);
these routes read the request on the event loop, hand it over, and shape the answer."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers

from app.core import clock
from app.core import errors as core_errors
from app.core.audit import AuditContext
from app.core.config import get_settings
from app.core.db import DbSession, session_factory
from app.core.errors import AppError, responses
from app.core.i18n import Language
from app.identity.dependencies import (
    CurrentPrincipal,
    Principal,
    audit_context,
    client_ip,
    require_roles,
)
from app.identity.roles import Role
from app.oauth import (
    client_keys,
    clients,
    dpop,
    errors,
    jose_rules,
    pages,
    schemas,
    service,
)
from app.oauth.clients import SCOPES, Client
from app.oauth.config import get_oauth_settings
from app.oauth.models import AuthorizationRequest, OAuthClient
from app.oauth.server import Bridge, ClientReplayed, run, server
from app.oauth.server import Request as OAuthRequest
from app.tokens.keys import key_store


async def fresh_keys() -> None:
    """Pick up keys added by `python -m app keys rotate` in another process (once a minute)."""
    if key_store.stale():
        async with session_factory()() as session:
            await key_store.load(session)


class Refused(Exception):
    """A refusal answered with `response` (an OAuth error, a page). Raised, not returned, so the
    request's session dependency rolls its transaction back, or commits it when `commit` (a
    revoked token family, a counted failed sign-in: the failure is part of the answer)."""

    def __init__(self, response: Response, *, commit: bool = False) -> None:
        super().__init__(response.status_code)
        self.response = response
        self.commit = commit


class _OAuthRoute(APIRoute):
    """Routes that answer a `Refused` with its response, once the transaction has ended."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as refused:
                return refused.response

        return answer


router = APIRouter(dependencies=[Depends(fresh_keys)], route_class=_OAuthRoute)
AccountDb = DbSession  # one session per request, shared with the principal dependency

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# What the protocol endpoints answer besides their success: RFC 6749's error JSON.
_OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": schemas.OAuthError,
        "description": "invalid_request, invalid_grant, "
        "unsupported_grant_type, invalid_scope, invalid_dpop_proof, use_dpop_nonce, ...",
    },
    401: {
        "model": schemas.OAuthError,
        "description": "invalid_client: the client's authentication failed",
    },
}
_BEARER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": schemas.OAuthError,
        "description": "invalid_token, invalid_dpop_proof, "
        "use_dpop_nonce (RFC 6750, RFC 9449), with WWW-Authenticate",
    },
    403: {"model": schemas.OAuthError, "description": "insufficient_scope"},
}


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {}}}


# What the browser pages answer besides their page or redirect: an HTML page saying why.
_PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    302: {"description": "back to the client's redirect_uri (with `code`, or `error`)"},
    303: {"description": "on to the next page (sign-in, consent, the authorization)"},
    400: _page("the request is invalid or expired (an error page)"),
    403: _page(
        "a form without its CSRF token, or an identity level below what the client "
        "requires (an error page)"
    ),
}
_SIGN_IN_ERRORS: dict[int | str, dict[str, Any]] = {
    **_PAGE_ERRORS,
    401: _page("wrong phone number or password (the form again, with the error)"),
    422: _page("not a valid phone number (the form again, with the error)"),
    423: _page("the account is locked for a while (the form again, with the error)"),
    429: _page("too many attempts (the form again, with the error)"),
}
PROMPTS = {"none", "login", "consent", "select_account"}


def _url(path: str) -> str:
    return get_settings().issuer + path


def _ctx(request: Request) -> AuditContext:
    return audit_context(request)


async def _pairs(request: Request) -> list[tuple[str, str]]:
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return []
        body = (await request.body()).decode("utf-8", "replace")
        return parse_qsl(body, keep_blank_values=True)
    return list(request.query_params.multi_items())


def _headers(request: Request) -> Headers:
    """The request's headers as authlib may read them: without an Authorization header that
    authlib's own parser raises on (a scheme with no credentials, Basic credentials that are
    not UTF-8). Without it the client is simply not authenticated by it: invalid_client."""
    value = request.headers.get("authorization")
    try:
        extract_basic_authorization({"Authorization": value})
    except ValueError:  # UnicodeDecodeError included
        headers = request.headers.mutablecopy()
        del headers["authorization"]
        return headers
    return request.headers


def _oauth_request(
    request: Request, path: str, pairs: list[tuple[str, str]], method: str | None = None
) -> OAuthRequest:
    method = method or request.method
    # Starlette's headers: case-insensitive, as authlib reads them ("Authorization").
    return OAuthRequest(
        method,
        _url(path),
        _headers(request),
        query=pairs if method == "GET" else [],
        form=pairs if method == "POST" else [],
    )


def _answer(status: int, body: Any, headers: dict[str, str]) -> Response:
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type="application/json",
        headers={**headers, **NO_STORE},
    )


def _with_params(uri: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _redirect_error(
    redirect_uri: str, error: str, state: str | None, description: str | None = None
) -> Response:
    return RedirectResponse(
        _with_params(
            redirect_uri,
            {
                "error": error,
                "error_description": description,
                "state": state,
                "iss": get_settings().issuer,
            },
        ),
        status_code=302,
    )


def _error_page(
    request: Request,
    lang: Any,
    message: str,
    code: str | None = None,
    description: str | None = None,
    status: int = 400,
) -> Response:
    return pages.render(
        request,
        "error.html",
        lang,
        status=status,
        message=message,
        code=code,
        description=description,
    )


# ---------------------------------------------------------------- discovery and keys


@router.get(
    "/.well-known/openid-configuration",
    response_model=schemas.OpenIdConfiguration,
    tags=["openid connect"],
    summary="OpenID Provider metadata",
)
async def discovery() -> Any:
    issuer = get_settings().issuer
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "pushed_authorization_request_endpoint": f"{issuer}/oauth/par",
        "require_pushed_authorization_requests": False,
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "end_session_endpoint": f"{issuer}/oauth/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": list(service.ID_TOKEN_ALGS),
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": list(jose_rules.CLIENT_ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods[:3],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "name",
            "birthdate",
            "gender",
            "locale",
            "updated_at",
            "phone_number",
            "phone_number_verified",
            "address",
            "cccd",
        ],
        "acr_values_supported": [service.acr_for(level) for level in (0, 1, 2)],
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["vi", "en"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "dpop_signing_alg_values_supported": list(dpop.ALGS),
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


@router.get(
    "/oauth/jwks",
    response_model=schemas.Jwks,
    tags=["openid connect"],
    summary="Public signing keys (JWKS)",
)
async def jwks(response: Response) -> Any:
    response.headers["Cache-Control"] = "public, max-age=300"
    return key_store.jwks()


# ---------------------------------------------------------------- authorization endpoint


@router.get(
    "/oauth/authorize",
    operation_id="authorize_get",
    tags=["openid connect"],
    summary="Authorization endpoint (code flow with PKCE S256)",
    response_class=Response,
    responses=_PAGE_ERRORS,
)
@router.post(
    "/oauth/authorize",
    operation_id="authorize_post",
    tags=["openid connect"],
    summary="Authorization endpoint (code flow with PKCE S256)",
    response_class=Response,
    responses=_PAGE_ERRORS,
)
async def authorize(request: Request, db: DbSession) -> Response:
    flow = _Authorization(request, db)
    try:
        return await flow.run(await _pairs(request))
    except _Answered as answered:
        return answered.response


class _Answered(Exception):  # a step's answer, not a fault
    """A step of the authorization answered (an error page or redirect, the sign-in page):
    the flow stops there and its writes are kept."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _Authorization:
    """The authorization endpoint's steps, in order (`run`); each step answers by raising
    `_Answered` when the flow ends there."""

    def __init__(self, request: Request, db: AsyncSession) -> None:
        self.request, self.db = request, db
        self.bridge = Bridge(db, _ctx(request), user_agent=request.headers.get("user-agent"))
        self.stored: Any = None  # the pushed or saved request, when resumed by request_uri
        self.request_uri: str | None = None
        self.lang: Any = None
        self.data: dict[str, str] = {}
        self.pairs: list[tuple[str, str]] = []

    async def run(self, pairs: list[tuple[str, str]]) -> Response:
        await self.read_request(pairs)
        grant = await self.validate()
        prompts, max_age = self.prompts(grant)
        browser, user = await self.signed_in(grant, prompts, max_age)
        required = await self.level_met(grant, user, prompts)
        await self.consent_given(grant, user, prompts)
        grantee = service.Grantee(
            user_id=user.id,
            browser_session_id=browser.id,
            auth_time=browser.auth_time,
            acr=service.acr_for(user.identity_level),
            required_loa=required,
        )
        return await self.issue_code(grant, grantee)

    def page(
        self,
        message: str,
        code: str | None = None,
        description: str | None = None,
        status: int = 400,
    ) -> _Answered:
        return _Answered(_error_page(self.request, self.lang, message, code, description, status))

    def back(self, grant: Any, error: str, description: str | None = None) -> _Answered:
        state = self.data.get("state")
        return _Answered(_redirect_error(grant.redirect_uri, error, state, description))

    async def read_request(self, pairs: list[tuple[str, str]]) -> None:
        """The request's parameters: as sent, or those pushed (PAR) or saved under its
        request_uri; a client that must push its requests is refused otherwise."""
        data = dict(reversed(pairs))  # first value wins, as authlib reads it
        self.lang = pages.language(self.request, data.get("ui_locales"))
        client_id = data.get("client_id")
        client = await clients.get_client(self.db, client_id) if client_id else None
        expired = pages.t(self.lang, "request_expired")
        if data.get("request_uri"):
            self.request_uri = data["request_uri"]
            self.stored = await service.load_request(self.db, self.request_uri, client_id)
            if self.stored is None:
                raise self.page(expired, "invalid_request_uri")
            pairs = [(k, str(v)) for k, v in self.stored.params.items()]
            data = dict(pairs)
            self.lang = pages.language(self.request, data.get("ui_locales"))
        elif client is not None and client.require_par:
            raise self.page(
                expired,
                "invalid_request",
                "This client must use pushed authorization requests (PAR).",
            )
        self.data, self.pairs = data, pairs
        if (
            client
            and not data.get("response_type")
            and data.get("redirect_uri") in client.redirect_uris
        ):
            raise _Answered(
                _redirect_error(
                    data["redirect_uri"],
                    "invalid_request",
                    data.get("state"),
                    "Missing response_type.",
                )
            )

    async def validate(self) -> Any:
        """authlib's checks (client, redirect_uri, scope, PKCE), once."""
        if client_id := self.data.get("client_id"):
            self.bridge.clients[client_id] = await clients.client_view(self.db, client_id)
        self.oauth_request = _oauth_request(
            self.request, "/oauth/authorize", self.pairs, method="GET"
        )
        try:
            return run(
                self.bridge, lambda: server.get_consent_grant(self.oauth_request, end_user=None)
            )
        except OAuth2Error as err:
            if err.redirect_uri:
                raise _Answered(
                    _redirect_error(
                        err.redirect_uri, err.error, self.data.get("state"), err.description
                    )
                ) from None
            raise self.page(
                pages.t(self.lang, "request_expired"), err.error, err.description
            ) from None

    def prompts(self, grant: Any) -> tuple[set[str], int | None]:
        prompts = set((self.data.get("prompt") or "").split())
        if not prompts <= PROMPTS or ("none" in prompts and len(prompts) > 1):
            raise self.back(grant, "invalid_request", "Invalid prompt.")
        if not self.data.get("max_age"):
            return prompts, None
        try:
            max_age = int(self.data["max_age"])
        except ValueError:
            max_age = -1
        if max_age < 0:
            raise self.back(grant, "invalid_request", "Invalid max_age.")
        return prompts, max_age

    async def signed_in(self, grant: Any, prompts: set[str], max_age: int | None) -> Any:
        """The citizen signed in at this browser, recently enough; else the sign-in page."""
        cookie = self.request.cookies.get(pages.SESSION_COOKIE)
        browser = await service.browser_session(self.db, cookie)
        user = await service.identity.get_active_user(self.db, browser.user_id) if browser else None
        if user is not None and browser is not None:
            # Signed in since this request was saved: prompt=login and max_age are met.
            if self.stored is not None and browser.auth_time >= self.stored.created_at:
                return browser, user
            age = (clock.now() - browser.auth_time).total_seconds()
            if "login" not in prompts and (max_age is None or age <= max_age):
                return browser, user
        if "none" in prompts:
            raise self.back(grant, "login_required")
        raise await self.interactive(grant, "login")

    async def level_met(self, grant: Any, user: Any, prompts: set[str]) -> int:
        """The identity level the client requires, which the citizen must have now."""
        client: Client = grant.request.client
        required = service.required_level(client.row, self.data.get("acr_values"))
        if user.identity_level >= required:
            return required
        if self.stored is not None:
            await service.finish_request(self.db, self.stored.id)
        back = _with_params(
            grant.redirect_uri,
            {
                "error": "unmet_authentication_requirements",
                "state": self.data.get("state"),
                "error_description": f"identity level {required} required",
                "iss": get_settings().issuer,
            },
        )
        if "none" in prompts:
            raise _Answered(RedirectResponse(back, status_code=302))
        raise _Answered(
            pages.render(
                self.request,
                "level.html",
                self.lang,
                status=403,
                client_name=client.row.name,
                required=required,
                current=user.identity_level,
                back_url=back,
            )
        )

    async def consent_given(self, grant: Any, user: Any, prompts: set[str]) -> None:
        """A partner (not first-party) client needs the citizen's consent to these scopes."""
        client: Client = grant.request.client
        if client.row.first_party:
            return
        since = None
        if "consent" in prompts:
            since = self.stored.created_at if self.stored else clock.now()
        scopes = service.scope_set(grant.request.scope or "")
        if await service.consent_covers(self.db, user.id, client.client_id, scopes, since=since):
            return
        if "none" in prompts:
            raise self.back(grant, "consent_required")
        raise await self.interactive(grant, "consent")

    async def interactive(self, grant: Any, page: str) -> _Answered:
        """On to the sign-in or consent page, the request saved (or resumed) for after it."""
        if self.stored is not None:
            request_uri = self.request_uri
        else:
            request_uri, _ = await service.save_request(
                self.db, grant.request.client.client_id, dict(self.pairs), pushed=False
            )
        query = urlencode({"req": request_uri, "lang": self.lang})
        return _Answered(RedirectResponse(f"/oauth/{page}?{query}", status_code=303))

    async def issue_code(self, grant: Any, grantee: service.Grantee) -> Response:
        """One code per request: a resumed request is spent first (a concurrent use of the
        same request_uri gets none)."""
        if self.stored is not None and not await service.finish_request(self.db, self.stored.id):
            raise self.page(pages.t(self.lang, "request_expired"), "invalid_request_uri")
        status, _body, headers = run(
            self.bridge,
            lambda: server.create_authorization_response(
                self.oauth_request, grant_user=grantee, grant=grant
            ),
        )
        await self.bridge.flush_deferred()  # the code
        location = headers.get("Location", "")
        if status != 302 or not location:
            raise self.page(pages.t(self.lang, "request_expired"))
        if "error=" not in location:
            location = _with_params(location, {"iss": get_settings().issuer})
        return RedirectResponse(location, status_code=302)


# ---------------------------------------------------------------- login and consent pages


async def _page_request(
    request: Request, db: AsyncSession, req: str | None
) -> tuple[AuthorizationRequest, OAuthClient] | None:
    if not req:
        return None
    row = await service.load_request(db, req, None, any_client=True)
    if row is None:
        return None
    client = await clients.get_client(db, row.client_id)
    return (row, client) if client else None


@dataclass
class _Page:
    """A login or consent page's saved authorization request, its client and language."""

    row: AuthorizationRequest
    client: OAuthClient
    lang: Language


@dataclass
class _Submitted(_Page):
    form: dict[str, str]
    req: str


async def _opened_page(request: Request, db: AsyncSession, req: str | None) -> _Page | Response:
    found = await _page_request(request, db, req)
    lang = pages.language(request, found[0].params.get("ui_locales") if found else None)
    if found is None:
        return _error_page(request, lang, pages.t(lang, "request_expired"))
    return _Page(*found, lang)


async def _submitted_form(request: Request, db: AsyncSession) -> _Submitted | Response:
    """A posted login or consent form, its request still alive and its CSRF token right."""
    form = dict(reversed(await _pairs(request)))
    req = form.get("req")
    found = await _page_request(request, db, req)
    posted = form.get("lang")
    lang = cast("Language", posted) if posted in ("vi", "en") else pages.language(request)
    if found is None or req is None:
        return _error_page(request, lang, pages.t(lang, "request_expired"))
    if not pages.csrf_ok(request, form.get("csrf_token"), req):
        return _error_page(request, lang, pages.t(lang, "csrf_failed"), status=403)
    return _Submitted(*found, lang, form, req)


def _continue(row: Any, req: str) -> Response:
    return RedirectResponse(
        "/oauth/authorize?" + urlencode({"client_id": row.client_id, "request_uri": req}),
        status_code=303,
    )


@router.get(
    "/oauth/login",
    tags=["openid connect"],
    response_class=Response,
    summary="Sign-in page (HTML)",
    responses=_PAGE_ERRORS,
)
async def login_page(request: Request, db: DbSession, req: str | None = None) -> Response:
    page = await _opened_page(request, db, req)
    if isinstance(page, Response):
        return page
    return pages.render(
        request,
        "login.html",
        page.lang,
        csrf_bound_to=req,
        req=req,
        client_name=page.client.name,
        phone=page.row.params.get("login_hint"),
    )


@router.post(
    "/oauth/login",
    tags=["openid connect"],
    response_class=Response,
    summary="Sign in (form post)",
    responses=_SIGN_IN_ERRORS,
)
async def login_submit(request: Request, db: DbSession) -> Response:
    page = await _submitted_form(request, db)
    if isinstance(page, Response):
        return page
    form, req, lang, row, client = page.form, page.req, page.lang, page.row, page.client
    client_name, client_id = client.name, client.id  # read before a rollback expires the row
    previous = await service.browser_session(db, request.cookies.get(pages.SESSION_COOKIE))
    try:
        _user, _session, cookie = await service.sign_in(
            db,
            phone=form.get("phone", ""),
            password=form.get("password", ""),
            user_agent=request.headers.get("user-agent"),
            ctx=_ctx(request),
            client_id=client_id,
            previous=previous,
        )
    except AppError as exc:
        message = exc.error.message(lang, exc.params)
        response = pages.render(
            request,
            "login.html",
            lang,
            status=exc.error.status,
            csrf_bound_to=req,
            req=req,
            client_name=client_name,
            phone=form.get("phone"),
            error=message,
        )
        for name, value in exc.headers.items():
            response.headers[name] = value
        raise Refused(response, commit=exc.commit) from None  # failed attempts count
    response = _continue(row, req)
    response.set_cookie(
        pages.SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=pages.secure_cookies(),
        path="/oauth",
        max_age=get_oauth_settings().browser_session_days * 86400,
    )
    return response


@router.get(
    "/oauth/consent",
    tags=["openid connect"],
    response_class=Response,
    summary="Consent page (HTML)",
    responses=_PAGE_ERRORS,
)
async def consent_page(request: Request, db: DbSession, req: str | None = None) -> Response:
    page = await _opened_page(request, db, req)
    if isinstance(page, Response):
        return page
    allowed = Client(page.client).get_allowed_scope(page.row.params.get("scope"))
    scopes = [s for s in allowed.split() if s in SCOPES]
    return pages.render(
        request,
        "consent.html",
        page.lang,
        csrf_bound_to=req,
        req=req,
        client_name=page.client.name,
        scopes=scopes,
    )


@router.post(
    "/oauth/consent",
    tags=["openid connect"],
    response_class=Response,
    summary="Allow or deny (form post)",
    responses=_PAGE_ERRORS,
)
async def consent_submit(request: Request, db: DbSession) -> Response:
    page = await _submitted_form(request, db)
    if isinstance(page, Response):
        return page
    form, req, lang, row, client = page.form, page.req, page.lang, page.row, page.client
    browser = await service.browser_session(db, request.cookies.get(pages.SESSION_COOKIE))
    user = await service.identity.get_active_user(db, browser.user_id) if browser else None
    if user is None:
        return RedirectResponse(
            "/oauth/login?" + urlencode({"req": req, "lang": lang}), status_code=303
        )
    redirect_uri = row.params.get("redirect_uri")
    if form.get("decision") != "allow":
        await service.finish_request(db, row.id)
        if redirect_uri in client.redirect_uris:
            return _redirect_error(redirect_uri, "access_denied", row.params.get("state"))
        return _error_page(request, lang, pages.t(lang, "request_expired"))
    scopes = service.scope_set(Client(client).get_allowed_scope(row.params.get("scope")))
    await service.grant_consent(db, user, client.id, scopes, _ctx(request))
    return _continue(row, req)


# ---------------------------------------------------------------- token, PAR, revoke, introspect


async def _dpop(request: Request, db: AsyncSession, path: str) -> str | None:
    proof = request.headers.get("dpop")
    if proof is None:
        return None
    return await dpop.verify_proof(db, proof, method=request.method, url=_url(path))


def _dpop_error(exc: dpop.DPoPError) -> Response:
    if isinstance(exc, dpop.NonceNeeded):  # RFC 9449 §8: retry with this nonce
        return _answer(
            400,
            {"error": "use_dpop_nonce", "error_description": str(exc)},
            {"DPoP-Nonce": dpop.new_nonce()},
        )
    return _answer(400, {"error": "invalid_dpop_proof", "error_description": str(exc)}, {})


@router.post(
    "/oauth/token",
    tags=["openid connect"],
    response_model=schemas.TokenAnswer,
    summary="Token endpoint (authorization_code, refresh_token, client_credentials)",
    responses=_OAUTH_ERRORS,
)
async def token(request: Request, db: DbSession) -> Response:
    pairs = await _pairs(request)
    await client_keys.prefetch_for_assertion(pairs)  # before the database: see client_keys
    try:
        jkt = await _dpop(request, db, "/oauth/token")
    except dpop.DPoPError as exc:
        raise Refused(_dpop_error(exc)) from None
    b = Bridge(db, _ctx(request), user_agent=request.headers.get("user-agent"), dpop_jkt=jkt)
    await _prefetch(b, request, pairs)
    status, body, headers = run(
        b, lambda: server.create_token_response(_oauth_request(request, "/oauth/token", pairs))
    )
    if status < 400:
        status, body = await _finish(b, status, body)  # e.g. the rotation: before the answer
    if jkt:
        headers = {**headers, "DPoP-Nonce": dpop.new_nonce()}  # the nonce for the next proofs
    if status >= 400:
        raise Refused(_answer(status, body, headers), commit=b.keep_writes)
    return _answer(status, body, headers)


def _assertion_subject(assertion: str | None) -> str | None:
    """The `sub` of a client assertion, unverified: only to prefetch the client it names."""
    if not assertion or assertion.count(".") != 2:
        return None
    try:
        segment = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and len(sub) <= 100 else None


async def _prefetch(
    b: Bridge, request: Request, pairs: list[tuple[str, str]], endpoint: str | None = None
) -> None:
    """Read on the loop what authlib will ask for, so it can run inline (see server.Bridge)."""
    data = dict(reversed(pairs))
    basic_id, _ = extract_basic_authorization(_headers(request))
    asserted = _assertion_subject(data.get("client_assertion"))
    refreshing = data.get("grant_type") == "refresh_token" and data.get("refresh_token")
    code = data.get("code") if data.get("grant_type") == "authorization_code" else None
    for client_id in {basic_id, data.get("client_id"), asserted}:
        if client_id and len(client_id) <= 100:
            b.clients[client_id] = await clients.client_view(b.db, client_id)
    for client_id, client in b.clients.items():
        if code and client is not None:
            row, revoked, user = await service.read_code(b.db, code, client_id, b.ctx)
            b.codes[(code, client_id)] = (row, revoked)
            if row is not None:
                b.users[row.user_id] = user
    if refreshing:
        for client_id, client in b.clients.items():
            if client is not None:
                b.refresh[(data["refresh_token"], client_id)] = await service.lookup_refresh(
                    b.db, data["refresh_token"], client_id
                )
    token_string = data.get("token")
    if endpoint and token_string:
        info = await service.find_token(b.db, token_string, data.get("token_type_hint"))
        b.tokens[token_string] = info
        if endpoint == "introspection" and info is not None and info.active:
            info.payload = await service.introspection_payload(b.db, info)


async def _finish(b: Bridge, status: int, body: Any) -> tuple[int, Any]:
    """Run the writes deferred while authlib answered; a refusal among them is the answer."""
    try:
        await b.flush_deferred()
    except ClientReplayed:
        return 400, {"error": "invalid_client", "error_description": "JWT ID is used before."}
    except service.GrantRefused as exc:
        b.keep_writes = exc.commit
        return 400, {"error": "invalid_grant", "error_description": exc.description}
    return status, body


@router.post(
    "/oauth/par",
    tags=["openid connect"],
    response_model=schemas.OAuthAnswer,
    status_code=201,
    summary="Pushed authorization request (RFC 9126)",
    responses=_OAUTH_ERRORS,
)
async def par(request: Request, db: DbSession) -> Response:
    pairs = await _pairs(request)
    await client_keys.prefetch_for_assertion(pairs)
    data = dict(reversed(pairs))
    if "request_uri" in data:
        return _answer(
            400,
            {"error": "invalid_request", "error_description": "request_uri is not allowed here"},
            {},
        )
    b = Bridge(db, _ctx(request))
    await _prefetch(b, request, pairs)
    oauth_request = _oauth_request(request, "/oauth/par", pairs)

    def validate() -> Any:
        client = server.authenticate_client(oauth_request, [*server_client_auth()], "par")
        oauth_request.payload.data["client_id"] = client.client_id
        get = _oauth_request(
            request,
            "/oauth/authorize",
            [
                (k, v)
                for k, v in pairs
                if k not in {"client_secret", "client_assertion", "client_assertion_type"}
            ]
            + ([] if "client_id" in data else [("client_id", client.client_id)]),
            method="GET",
        )
        server.get_consent_grant(get, end_user=None)
        return client

    try:
        client = run(b, validate)
    except OAuth2Error as err:
        raise Refused(
            _answer(
                err.status_code if err.error == "invalid_client" else 400,
                {"error": err.error, "error_description": err.description},
                {},
            )
        ) from None
    status, body = await _finish(b, 201, {})  # the client assertion's jti, remembered
    if status >= 400:
        raise Refused(_answer(status, body, {}))
    if not data.get("dpop_jkt"):
        try:
            jkt = await _dpop(request, db, "/oauth/par")
        except dpop.DPoPError as exc:
            raise Refused(_dpop_error(exc)) from None
        if jkt:
            pairs.append(("dpop_jkt", jkt))
    params = {
        k: v
        for k, v in dict(reversed(pairs)).items()
        if k not in {"client_assertion", "client_assertion_type", "client_secret"}
    }
    params["client_id"] = client.client_id
    request_uri, ttl = await service.save_request(db, client.client_id, params, pushed=True)
    return _answer(201, {"request_uri": request_uri, "expires_in": ttl}, {})


def server_client_auth() -> list[str]:
    from app.oauth.server import ANY_CLIENT_AUTH

    return ANY_CLIENT_AUTH


@router.post(
    "/oauth/revoke",
    tags=["openid connect"],
    response_model=schemas.OAuthAnswer,
    summary="Token revocation (RFC 7009)",
    responses=_OAUTH_ERRORS,
)
async def revoke(request: Request, db: DbSession) -> Response:
    return await _endpoint(request, db, "revocation", "/oauth/revoke")


@router.post(
    "/oauth/introspect",
    tags=["openid connect"],
    response_model=schemas.OAuthAnswer,
    summary="Token introspection (RFC 7662), for authenticated clients",
    responses=_OAUTH_ERRORS,
)
async def introspect(request: Request, db: DbSession) -> Response:
    return await _endpoint(request, db, "introspection", "/oauth/introspect")


async def _endpoint(request: Request, db: AsyncSession, name: str, path: str) -> Response:
    b = Bridge(db, _ctx(request))
    pairs = await _pairs(request)
    await client_keys.prefetch_for_assertion(pairs)
    await _prefetch(b, request, pairs, endpoint=name)
    status, body, headers = run(
        b, lambda: server.create_endpoint_response(name, _oauth_request(request, path, pairs))
    )
    if status < 400:
        status, body = await _finish(b, status, body)
    if status >= 400:
        raise Refused(_answer(status, body, headers))
    return _answer(status, body, headers)


# ---------------------------------------------------------------- userinfo


def _bearer_error(error: str, status: int = 401, scheme: str = "Bearer") -> Response:
    return Response(
        json.dumps({"error": error}),
        status_code=status,
        media_type="application/json",
        headers={"WWW-Authenticate": f'{scheme} error="{error}"', **NO_STORE},
    )


@router.get(
    "/oauth/userinfo",
    operation_id="userinfo_get",
    tags=["openid connect"],
    response_model=schemas.OAuthAnswer,
    summary="UserInfo endpoint",
    responses=_BEARER_ERRORS,
)
@router.post(
    "/oauth/userinfo",
    operation_id="userinfo_post",
    tags=["openid connect"],
    response_model=schemas.OAuthAnswer,
    summary="UserInfo endpoint",
    responses=_BEARER_ERRORS,
)
async def userinfo(request: Request, db: DbSession) -> Response:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    access = value.strip() if scheme.lower() in {"bearer", "dpop"} else None
    if access is None and request.method == "POST":
        form = dict(reversed(await _pairs(request)))
        access, scheme = form.get("access_token"), "Bearer"
    if not access:
        return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="thainguyen"'})
    claims = service.decode_access_token(access)
    if claims is None or int(claims.get("exp", 0)) <= clock.now().timestamp():
        return _bearer_error("invalid_token")
    jkt = (claims.get("cnf") or {}).get("jkt")
    if jkt:
        if scheme.lower() != "dpop":
            return _bearer_error("invalid_token", scheme="DPoP")
        try:
            presented = await dpop.verify_proof(
                db,
                request.headers.get("dpop", ""),
                method=request.method,
                url=_url("/oauth/userinfo"),
                access_token=access,
            )
        except dpop.NonceNeeded:  # RFC 9449 §9: the resource server's nonce challenge
            response = _bearer_error("use_dpop_nonce", scheme="DPoP")
            response.headers["DPoP-Nonce"] = dpop.new_nonce()
            return response
        except dpop.DPoPError:
            return _bearer_error("invalid_dpop_proof", scheme="DPoP")
        if presented != jkt:
            return _bearer_error("invalid_dpop_proof", scheme="DPoP")
    elif scheme.lower() == "dpop":
        return _bearer_error("invalid_token")
    found = await service.userinfo_subject(db, claims)
    if found is None:
        return _bearer_error("invalid_token")
    user, client, _link = found
    if "openid" not in service.scope_set(claims.get("scope")):
        return _bearer_error("insufficient_scope", status=403)
    body = await service.claims_for(db, user, client, claims.get("scope", ""))
    return _answer(200, body, {})


# ---------------------------------------------------------------- logout


@router.get(
    "/oauth/logout",
    operation_id="logout_get",
    tags=["openid connect"],
    response_class=Response,
    summary="RP-initiated logout (end_session_endpoint)",
)
@router.post(
    "/oauth/logout",
    operation_id="logout_post",
    tags=["openid connect"],
    response_class=Response,
    summary="RP-initiated logout (end_session_endpoint)",
)
async def logout(request: Request, db: DbSession) -> Response:
    data = dict(reversed(await _pairs(request)))
    lang = pages.language(request, data.get("ui_locales"))
    hint_claims = (
        service.decode_id_token_hint(data["id_token_hint"]) if data.get("id_token_hint") else None
    )
    if data.get("id_token_hint") and hint_claims is None:
        return _error_page(
            request,
            lang,
            pages.t(lang, "title_error"),
            "invalid_request",
            "id_token_hint is not valid",
        )
    client_id = data.get("client_id") or (hint_claims or {}).get("aud")
    if hint_claims and data.get("client_id") and data["client_id"] != hint_claims.get("aud"):
        return _error_page(
            request,
            lang,
            pages.t(lang, "title_error"),
            "invalid_request",
            "client_id does not match id_token_hint",
        )
    target = data.get("post_logout_redirect_uri")
    client = await clients.get_client(db, client_id) if isinstance(client_id, str) else None
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return _error_page(
            request,
            lang,
            pages.t(lang, "title_error"),
            "invalid_request",
            "post_logout_redirect_uri is not registered",
        )
    confirmed = (
        request.method == "POST"
        and data.get("confirm") == "yes"
        and pages.csrf_ok(request, data.get("csrf_token"), "logout")
    )
    browser = await service.browser_session(db, request.cookies.get(pages.SESSION_COOKIE))
    # Without asking only when the hint names the citizen signed in here: another citizen's ID
    # token (or one of ours sent by a forged link) must not sign this browser out unawares.
    hint_is_visitor = hint_claims is not None and service.hint_names(hint_claims, client, browser)
    if not hint_is_visitor and not confirmed:
        carry = [
            (k, v)
            for k, v in data.items()
            if k
            in {"post_logout_redirect_uri", "state", "client_id", "ui_locales", "id_token_hint"}
        ]
        return pages.render(
            request, "logout.html", lang, csrf_bound_to="logout", carry=carry, done=False
        )
    # The session the hint names ends too when it is the visitor's, or nobody is signed in here.
    client_sid = (hint_claims or {}).get("sid") if hint_is_visitor or browser is None else None
    await service.logout(db, browser=browser, client_sid=client_sid, ctx=_ctx(request))
    if target:
        response: Response = RedirectResponse(
            _with_params(target, {"state": data.get("state")}), status_code=302
        )
    else:
        response = pages.render(request, "logout.html", lang, done=True)
    response.delete_cookie(pages.SESSION_COOKIE, path="/oauth")
    return response


# ---------------------------------------------------------------- the citizen's allowed apps


me = APIRouter(prefix="/api/v1/me/apps", tags=["me"])
AUTH_ERRORS = (core_errors.UNAUTHENTICATED, core_errors.TOKEN_INVALID)


@me.get(
    "",
    response_model=schemas.AllowedApps,
    summary="Apps I allowed to use my Thai Nguyen ID",
    responses=responses(*AUTH_ERRORS),
)
async def my_apps(principal: CurrentPrincipal, db: AccountDb) -> Any:
    rows = await service.list_apps(db, principal.user.id)
    return {
        "items": [
            {
                "client_id": client.id,
                "name": client.name,
                "scopes": sorted(service.scope_set(consent.scope)),
                "granted_at": consent.granted_at,
            }
            for consent, client in rows
        ]
    }


@me.delete(
    "/{client_id}",
    status_code=204,
    response_class=Response,
    summary="Withdraw an app's access (consent and tokens)",
    responses=responses(errors.APP_NOT_FOUND, *AUTH_ERRORS),
)
async def revoke_my_app(
    client_id: str, principal: CurrentPrincipal, db: AccountDb, request: Request
) -> Response:
    await service.revoke_app(db, principal.user, client_id, audit_context(request, principal))
    return Response(status_code=204)


router.include_router(me)


# ---------------------------------------------------------------- admin API (city admins)


admin = APIRouter(prefix="/api/v1/admin/oauth/clients", tags=["admin: oauth clients"])
CityAdmin = Annotated[Principal, Depends(require_roles(Role.CITY_ADMIN))]


@admin.post(
    "",
    response_model=schemas.ClientCreated,
    status_code=201,
    summary="Register a partner application (the secret is shown once)",
    responses=responses(
        errors.CLIENT_INVALID, core_errors.FORBIDDEN, *AUTH_ERRORS, core_errors.VALIDATION_FAILED
    ),
)
async def create_client(
    body: schemas.ClientCreate, principal: CityAdmin, db: AccountDb, request: Request
) -> Any:
    created = await clients.create_client(
        db,
        name=body.name,
        redirect_uris=body.redirect_uris,
        client_type=body.type,
        auth_method=body.auth_method,
        scope=body.scope,
        jwks=body.jwks,
        jwks_uri=body.jwks_uri,
        min_loa=body.min_loa,
        backchannel_logout_uri=body.backchannel_logout_uri,
        post_logout_redirect_uris=body.post_logout_redirect_uris,
        grant_types=body.grant_types,
        first_party=body.first_party,
        allow_cccd=body.allow_cccd,
        require_par=body.require_par,
        require_dpop=body.require_dpop,
        id_token_alg=body.id_token_signed_response_alg,
        sector_identifier_uri=body.sector_identifier_uri,
        ctx=audit_context(request, principal),
    )
    row = created.client
    return {
        "client_id": row.id,
        "client_secret": created.client_secret,
        "name": row.name,
        "type": row.client_type,
        "auth_method": row.auth_method,
        "scope": row.scope,
        "redirect_uris": row.redirect_uris,
        "grant_types": row.grant_types,
    }


ADMIN_ERRORS = (core_errors.FORBIDDEN, *AUTH_ERRORS)


@admin.get(
    "",
    response_model=schemas.ClientList,
    summary="Registered partner applications",
    responses=responses(*ADMIN_ERRORS),
)
async def list_clients(principal: CityAdmin, db: AccountDb) -> Any:
    return {"items": [clients.describe(row) for row in await clients.list_clients(db)]}


@admin.get(
    "/{client_id}",
    response_model=schemas.ClientOut,
    summary="A partner application",
    responses=responses(errors.CLIENT_NOT_FOUND, *ADMIN_ERRORS),
)
async def get_client(client_id: str, principal: CityAdmin, db: AccountDb) -> Any:
    return clients.describe(await clients.find_client(db, client_id))


@admin.patch(
    "/{client_id}",
    response_model=schemas.ClientOut,
    summary="Change a partner application (redirect URIs, name, scopes, level, "
    "back-channel logout, keys)",
    responses=responses(
        errors.CLIENT_NOT_FOUND, errors.CLIENT_INVALID, *ADMIN_ERRORS, core_errors.VALIDATION_FAILED
    ),
)
async def update_client(
    client_id: str,
    body: schemas.ClientUpdate,
    principal: CityAdmin,
    db: AccountDb,
    request: Request,
) -> Any:
    given = body.model_dump(exclude_unset=True)
    for required in ("name", "redirect_uris", "post_logout_redirect_uris", "scope", "min_loa"):
        if required in given and given[required] is None:
            raise AppError(errors.CLIENT_INVALID, params={"reason": f"{required} cannot be null"})
    row = await clients.update_client(db, client_id, ctx=audit_context(request, principal), **given)
    return clients.describe(row)


async def _set_status(
    client_id: str,
    status: str,
    body: schemas.ClientStatusChange | None,
    principal: Principal,
    db: AsyncSession,
    request: Request,
) -> Any:
    row = await clients.set_client_status(
        db,
        client_id,
        status,
        ctx=audit_context(request, principal),
        reason=body.reason if body else None,
    )
    return clients.describe(row)


@admin.post(
    "/{client_id}/disable",
    response_model=schemas.ClientOut,
    summary="Disable a partner application (invalid_client; its tokens inactive)",
    responses=responses(errors.CLIENT_NOT_FOUND, *ADMIN_ERRORS),
)
async def disable_client(
    client_id: str,
    principal: CityAdmin,
    db: AccountDb,
    request: Request,
    body: schemas.ClientStatusChange | None = None,
) -> Any:
    return await _set_status(client_id, "disabled", body, principal, db, request)


@admin.post(
    "/{client_id}/enable",
    response_model=schemas.ClientOut,
    summary="Enable a disabled partner application again",
    responses=responses(errors.CLIENT_NOT_FOUND, *ADMIN_ERRORS),
)
async def enable_client(
    client_id: str,
    principal: CityAdmin,
    db: AccountDb,
    request: Request,
    body: schemas.ClientStatusChange | None = None,
) -> Any:
    return await _set_status(client_id, "active", body, principal, db, request)


@admin.post(
    "/{client_id}/secret",
    response_model=schemas.ClientSecret,
    summary="Rotate the client secret (the new one is shown once)",
    responses=responses(errors.CLIENT_NOT_FOUND, errors.CLIENT_INVALID, *ADMIN_ERRORS),
)
async def rotate_client_secret(
    client_id: str, principal: CityAdmin, db: AccountDb, request: Request
) -> Any:
    rotated = await clients.rotate_secret(db, client_id, ctx=audit_context(request, principal))
    return {"client_id": rotated.client.id, "client_secret": rotated.client_secret}


router.include_router(admin)

# The machine-to-machine endpoints first: FastAPI tries a router's routes in order (twice per
# request), and these are called thousands of times a second where the pages are called once.
_HOT_PATHS = ("/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/userinfo")
router.routes.sort(key=lambda route: getattr(route, "path", "") not in _HOT_PATHS)
_ = (uuid, client_ip, JSONResponse)
