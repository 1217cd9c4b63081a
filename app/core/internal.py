"""Internal (machine-to-machine) endpoints under `/internal/`: which listener serves them and who
may call them.

`serve` can listen on a second, internal port (`INTERNAL_PORT`, typically reachable only inside
the city's network). `ListenerSplitMiddleware` keeps the two apart: with
`INTERNAL_ROUTES_ON_PUBLIC_LISTENER=false` the public listener answers 404 for `/internal/...`, and
the internal listener serves only `/internal/...`, the health/metrics endpoints and the API
reference. In production the public listener never serves `/metrics` (it tells an attacker about
traffic and errors), and serves `/docs`, `/redoc` and `/openapi.json` only with
`API_DOCS_PUBLIC=true`. The listener is told by the local port of the connection
(`scope["server"]`), so one process and one lifespan serve both. `require_internal_network` then
limits callers to `INTERNAL_ALLOWED_NETWORKS`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core import errors, metrics
from app.core.config import get_settings
from app.core.i18n import Language, negotiate

INTERNAL_PREFIX = "/internal/"
# Served on both listeners: probes and scrapers usually sit inside the network.
SHARED_PATHS = ("/healthz", "/readyz", "/metrics")
METRICS_PATH = "/metrics"
# FastAPI's API reference (its default URLs).
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")

INTERNAL_NETWORK_FORBIDDEN = errors.error_code(
    "internal.network_forbidden",
    403,
    "Địa chỉ mạng này không được phép gọi dịch vụ nội bộ.",
    "This network address may not call internal endpoints.",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Refused:
    """Stands for the route in metrics (`route` label) of requests refused by the listener
    split, so they are told apart from paths that exist nowhere (`unmatched`)."""

    path = "(not served on this listener)"


REFUSED_ROUTE = _Refused()


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in spec)


def address_allowed(host: str | None, allowed: list[str]) -> bool:
    if not host:
        return False
    return _allowed(host, tuple(allowed))


@lru_cache(maxsize=1024)
def _allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Cached: internal callers are a handful of addresses, each calling many times a second
    (parsing the address and testing it against every network cost ~30 us per alert)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(allowed))


async def require_internal_network(request: Request) -> None:
    """Dependency of every internal router: the caller's address must be allow-listed."""
    host = request.client.host if request.client else None
    if not address_allowed(host, get_settings().internal_allowed_networks):
        raise errors.AppError(INTERNAL_NETWORK_FORBIDDEN)


class ListenerSplitMiddleware:
    """Route each request by the listener it arrived on (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._served_here(scope):
            scope["route"] = REFUSED_ROUTE
            await self._not_found(scope, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _served_here(scope: Scope) -> bool:
        settings = get_settings()
        path: str = scope["path"]
        is_internal = path.startswith(INTERNAL_PREFIX)
        server = scope.get("server") or (None, None)
        on_internal_listener = (
            settings.internal_port is not None and server[1] == settings.internal_port
        )
        if on_internal_listener:
            return is_internal or path in SHARED_PATHS or path in DOCS_PATHS
        if is_internal:
            return settings.internal_routes_on_public_listener
        if path == METRICS_PATH:
            return settings.environment != "production"
        if path in DOCS_PATHS:
            return bool(settings.api_docs_public)
        return True

    @staticmethod
    async def _not_found(scope: Scope, send: Send) -> None:
        language: Language = "vi"
        for key, value in scope.get("headers", []):
            if key == b"accept-language":
                language = negotiate(value.decode("latin-1"))
        metrics.count_problem(errors.NOT_FOUND.code)
        body = orjson.dumps(errors.problem_body(errors.NOT_FOUND, language, instance=scope["path"]))
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", errors.PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
