"""Internal routes: switched off on the public listener, alone on the internal one, allow-listed."""

from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.internal import address_allowed
from tests.cameras.support import alert_body, make_camera, send


def client_on(app: object, port: int, ip: str = "10.1.2.3") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=f"http://server:{port}")


async def test_internal_routes_only_on_the_internal_port_when_switched_off_publicly(
    app: object,
    db: AsyncSession,
    camera_settings: object,
    wards: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_camera(db)
    monkeypatch.setattr(camera_settings, "internal_port", 8001)
    monkeypatch.setattr(camera_settings, "internal_routes_on_public_listener", False)
    async with client_on(app, 8000) as public, client_on(app, 8001) as internal:
        hidden = await send(public, alert_body())
        assert hidden.status_code == 404 and hidden.json()["code"] == "http.not_found"
        assert (await send(internal, alert_body())).status_code == 202
        # The internal listener serves nothing public, but does answer probes.
        assert (await internal.get("/api/v1/admin-units")).status_code == 404
        assert (await internal.get("/healthz")).status_code == 200
        assert (await public.get("/api/v1/admin-units")).status_code == 200

    monkeypatch.setattr(camera_settings, "internal_routes_on_public_listener", True)
    async with client_on(app, 8000) as public:
        assert (await send(public, alert_body())).status_code == 202


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.200.1.1", True),
        ("192.168.1.20", True),
        ("::1", True),
        ("::ffff:10.0.0.7", True),
        ("203.0.113.10", False),
        ("8.8.8.8", False),
        ("2001:db8::1", False),
        ("not-an-ip", False),
        (None, False),
    ],
)
def test_the_default_allowlist_is_loopback_and_private_networks(
    host: str | None, allowed: bool
) -> None:
    from app.core.config import get_settings

    assert address_allowed(host, get_settings().internal_allowed_networks) is allowed


async def test_an_operator_narrows_the_allowlist(
    app: object,
    db: AsyncSession,
    camera_settings: object,
    wards: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_camera(db)
    monkeypatch.setattr(camera_settings, "internal_allowed_networks", ["10.9.0.0/16"])
    async with client_on(app, 8000, "10.9.4.4") as ioc, client_on(app, 8000, "10.1.2.3") as lan:
        assert (await send(ioc, alert_body())).status_code == 202
        refused = await send(lan, alert_body())
        assert refused.status_code == 403
        assert refused.json()["code"] == "internal.network_forbidden"


def test_settings_accept_comma_separated_secrets_and_refuse_bad_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from app.core.config import Settings
    from tests.cameras.support import OLD_SECRET, SECRET

    monkeypatch.setenv("CAMERA_WEBHOOK_SECRETS", f"{SECRET}, {OLD_SECRET}")
    monkeypatch.setenv("INTERNAL_ALLOWED_NETWORKS", '["10.0.0.0/8"]')
    settings = Settings()
    assert settings.camera_webhook_secrets == [SECRET, OLD_SECRET]
    assert settings.internal_allowed_networks == ["10.0.0.0/8"]
    padded = "whsec_" + base64.b64encode(b"x" * 32).decode()  # ends in "="
    unpadded = padded.rstrip("=")
    monkeypatch.setenv("CAMERA_WEBHOOK_SECRETS", f"{padded} {unpadded}")
    assert Settings().camera_webhook_secrets == [padded, unpadded]
    monkeypatch.setenv("CAMERA_WEBHOOK_SECRETS", "hunter2")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("CAMERA_WEBHOOK_SECRETS", "")
    monkeypatch.setenv("INTERNAL_ALLOWED_NETWORKS", "10.0.0.0/33")
    with pytest.raises(ValidationError):
        Settings()
