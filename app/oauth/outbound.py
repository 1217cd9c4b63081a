"""Calls from the provider to partner URLs (jwks_uri, sector_identifier_uri,
backchannel_logout_uri), with the SSRF rule in one place.

A partner URL must not reach the provider's own network: an address that is private, loopback,
link-local, multicast, reserved or unspecified is refused (unless OAUTH_OUTBOUND_ALLOW_PRIVATE, the
default in development and test). The rule is checked on the URL at registration
(`check_target`) and again at every call after resolving the host (`resolve_public`); the call
then connects to the address that was checked (its Host header and TLS server name stay the
URL's), so a DNS answer that changes between check and connect (rebinding) cannot redirect it.
Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from app.oauth.config import get_oauth_settings

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class OutboundRefused(Exception):
    """The URL names (or resolves to) an address the provider must not call."""


class OutboundFailed(Exception):
    """The partner's URL could not be fetched (timeout, connection, status, size, JSON)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _internal(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def private_targets_allowed() -> bool:
    return get_oauth_settings().private_targets_allowed


def check_target(uri: str) -> None:
    """Refuse, without resolving, a URL whose host is an internal address or a local name."""
    if get_oauth_settings().private_targets_allowed:
        return
    host = (urlsplit(uri).hostname or "").rstrip(".").lower()
    if not host or host in LOCAL_NAMES or host.endswith((".localhost", ".local", ".internal")):
        raise OutboundRefused(host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: resolved and checked at every call
    if _internal(address):
        raise OutboundRefused(host)


async def resolve_public(host: str, port: int) -> str:
    """An address of `host` the provider may call; every address it resolves to must be one."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OutboundFailed(f"cannot resolve {host}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise OutboundFailed(f"cannot resolve {host}")
    if not get_oauth_settings().private_targets_allowed and any(map(_internal, addresses)):
        raise OutboundRefused(host)
    return str(addresses[0])


async def _pinned(uri: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL rewritten to the checked address, with the Host header and TLS name to keep."""
    check_target(uri)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await resolve_public(parts.hostname, port)
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions: dict[str, Any] = {}
    if parts.scheme == "https":
        extensions["sni_hostname"] = parts.hostname
    return pinned, {"Host": host_header}, extensions


async def get_json(uri: str) -> Any:
    """GET a partner's JSON document: short timeouts, a bounded body, no redirects."""
    settings = get_oauth_settings()
    timeout = settings.outbound_timeout_seconds
    pinned, headers, extensions = await _pinned(uri)
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http,
            http.stream(
                "GET",
                pinned,
                headers={**headers, "Accept": "application/json"},
                extensions=extensions,
            ) as response,
        ):
            if response.status_code != 200:
                raise OutboundFailed(f"status {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > settings.outbound_max_bytes:
                    raise OutboundFailed("too large")
    except (httpx.HTTPError, TimeoutError) as exc:
        raise OutboundFailed(type(exc).__name__) from exc
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise OutboundFailed("not JSON") from exc


async def post_form(uri: str, data: dict[str, str], *, seconds: float = 10.0) -> int:
    """POST a form to a partner (back-channel logout); the answer's status code."""
    pinned, headers, extensions = await _pinned(uri)
    async with httpx.AsyncClient(timeout=seconds, follow_redirects=False) as http:
        response = await http.post(
            pinned,
            data=data,
            headers={**headers, "Cache-Control": "no-store"},
            extensions=extensions,
        )
    return response.status_code
