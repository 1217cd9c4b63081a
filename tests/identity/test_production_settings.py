"""Production refuses identity settings that are safe only on a developer's machine, at start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.core.config import PROJECT_ROOT, get_settings
from app.identity.config import IdentitySettings

GATEWAY = {"sms_backend": "http", "sms_gateway_url": "https://sms.example.vn/send"}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "environment", "production")


def test_production_refuses_the_sms_file_sink(production: None) -> None:
    with pytest.raises(ValidationError, match="SMS_BACKEND=file is for development only"):
        IdentitySettings(sms_backend="file")
    assert IdentitySettings(**GATEWAY).sms_backend == "http"


def test_the_file_sink_is_accepted_outside_production() -> None:
    assert IdentitySettings(sms_backend="file").sms_backend == "file"


def test_the_http_gateway_needs_its_url() -> None:
    with pytest.raises(ValidationError, match="SMS_BACKEND=http needs SMS_GATEWAY_URL"):
        IdentitySettings(sms_backend="http")


def test_serve_refuses_to_start_on_an_unsafe_domain_setting_naming_it() -> None:
    """Checked at start, not at the first SMS: every core setting is safe, the SMS sink is not."""
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "PUBLIC_BASE_URL": "https://id.thainguyen.gov.vn",
        "SECRET_KEY": "s" * 48,
        "PII_ENCRYPTION_KEY": "cHJvZHVjdGlvbi1waWkta2V5LTMyLWJ5dGVzLWxvbmc=",
        "PASSWORD_HASH_TIME_COST": "3",
        "PASSWORD_HASH_MEMORY_KIB": "65536",
        "INTERNAL_ROUTES_ON_PUBLIC_LISTENER": "false",
        "INTERNAL_PORT": "8001",
        "SMS_BACKEND": "file",
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
    assert "settings.invalid" in done.stderr and "SMS_BACKEND=file" in done.stderr
