"""Production refuses settings that are safe only on a developer's machine, and keeps operational
endpoints (/metrics, the API reference) off the public listener."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.core.config import Settings, get_settings

# With the identity and notification settings a production server needs (the refusals of those
# are tested in tests/identity and tests/notifications).
SAFE: dict[str, Any] = {
    "environment": "production",
    "public_base_url": "https://id.thainguyen.gov.vn",
    "secret_key": "s" * 48,
    "pii_encryption_key": "cHJvZHVjdGlvbi1waWkta2V5LTMyLWJ5dGVzLWxvbmc=",
    "password_hash_time_cost": 3,
    "password_hash_memory_kib": 65536,
    "sms_backend": "http",
    "sms_gateway_url": "https://sms.example.vn/send",
    "push_backend": "fcm",
    "fcm_credentials_file": Path("/etc/tnid/fcm.json"),
    "internal_routes_on_public_listener": False,
    "internal_port": 8001,
}


def test_a_safe_production_configuration_starts() -> None:
    settings = Settings(**SAFE)
    assert settings.issuer == "https://id.thainguyen.gov.vn"
    assert settings.api_docs_public is False


@pytest.mark.parametrize(
    ("unsafe", "named"),
    [
        ({"public_base_url": "http://id.thainguyen.gov.vn"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": ""}, "PUBLIC_BASE_URL"),  # derives http://HOST:PORT
        ({"internal_routes_on_public_listener": True}, "INTERNAL_ROUTES_ON_PUBLIC_LISTENER"),
        ({"internal_port": None}, "INTERNAL_PORT"),
        ({"internal_port": 8000, "port": 8000}, "INTERNAL_PORT"),
        ({"secret_key": "short"}, "SECRET_KEY"),
        ({"log_level": "debug"}, "LOG_LEVEL"),
    ],
)
def test_production_refuses_each_unsafe_setting_by_name(unsafe: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(**(SAFE | unsafe))


def test_the_same_settings_are_accepted_in_development() -> None:
    settings = Settings(
        **(
            SAFE
            | {
                "environment": "development",
                "public_base_url": "",
                "push_backend": "file",
                "sms_backend": "file",
                "internal_routes_on_public_listener": True,
            }
        )
    )
    assert settings.issuer.startswith("http://")
    assert settings.api_docs_public is True


def client_on(app: object, port: int) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=f"http://server:{port}")


@pytest.fixture
def production_layout(monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = get_settings()
    monkeypatch.setattr(settings, "environment", "production")
    monkeypatch.setattr(settings, "internal_port", 8001)
    monkeypatch.setattr(settings, "internal_routes_on_public_listener", False)
    monkeypatch.setattr(settings, "api_docs_public", False)
    return settings


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/docs", "/redoc"])
async def test_production_serves_metrics_and_docs_only_on_the_internal_listener(
    app: object,
    production_layout: Settings,
    path: str,
) -> None:
    async with client_on(app, 8000) as public, client_on(app, 8001) as internal:
        hidden = await public.get(path)
        assert hidden.status_code == 404
        assert hidden.json()["code"] == "http.not_found"
        assert (await internal.get(path)).status_code == 200
        # The public listener still serves the API and the probes.
        assert (await public.get("/healthz")).status_code == 200


async def test_an_operator_may_publish_the_api_reference_but_never_the_metrics(
    app: object,
    production_layout: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(production_layout, "api_docs_public", True)
    async with client_on(app, 8000) as public:
        assert (await public.get("/openapi.json")).status_code == 200
        assert (await public.get("/metrics")).status_code == 404


async def test_outside_production_metrics_stay_on_both_listeners(app: object) -> None:
    async with client_on(app, 8000) as public:
        assert (await public.get("/metrics")).status_code == 200


def test_serve_refuses_to_start_naming_the_setting_and_printing_no_secret() -> None:
    import os
    import subprocess
    import sys

    from app.core.config import PROJECT_ROOT

    secret = "a-real-production-secret-" + "k" * 24
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": secret,
        "PUBLIC_BASE_URL": "http://id.thainguyen.gov.vn",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "PUBLIC_BASE_URL" in done.stderr and "settings.invalid" in done.stderr
    assert secret not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_production_server_serves_metrics_and_docs_only_on_its_internal_listener(
    tmp_path: Path,
) -> None:
    """`serve` as deployed: production settings (its own database: the test database's signing
    keys are sealed with the development key), a public and an internal port."""
    import os
    import subprocess
    import sys
    import time

    from alembic import command

    from app.core.config import PROJECT_ROOT
    from scripts.fake_fcm import write_credentials
    from tests.support.databases import alembic_config
    from tests.support.servers import free_port

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'production.db'}"
    command.upgrade(alembic_config(database_url), "head")

    credentials = tmp_path / "fcm.json"
    write_credentials(credentials, "https://oauth2.invalid", "demo-thainguyen")
    public, internal = free_port(), free_port()
    env = {
        **os.environ,
        **{k.upper(): str(v) for k, v in SAFE.items()},
        "FCM_CREDENTIALS_FILE": str(credentials),
        "INTERNAL_PORT": str(internal),
        "DATABASE_URL": database_url,
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(public)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(server.communicate()[0].decode()[-3000:])
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{public}/healthz", timeout=1).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        for path in ("/metrics", "/openapi.json", "/docs", "/internal/v1/camera-alerts"):
            hidden = httpx.get(f"http://127.0.0.1:{public}{path}", timeout=10)
            assert hidden.status_code == 404, path
        for path in ("/metrics", "/openapi.json", "/docs", "/healthz"):
            assert httpx.get(f"http://127.0.0.1:{internal}{path}", timeout=10).is_success, path
    finally:
        server.terminate()
        server.wait(timeout=30)
