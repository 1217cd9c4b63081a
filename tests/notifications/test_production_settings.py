"""Production refuses push settings that are safe only on a developer's machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import get_settings
from app.notifications.config import NotificationSettings

FCM: dict[str, Any] = {"push_backend": "fcm", "fcm_credentials_file": Path("/etc/tnid/fcm.json")}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "environment", "production")


def test_production_accepts_fcm_with_credentials(production: None) -> None:
    assert NotificationSettings(**FCM).push_backend == "fcm"


@pytest.mark.parametrize(
    ("unsafe", "named"),
    [
        ({"push_backend": "file"}, "PUSH_BACKEND=file"),
        ({"fcm_credentials_file": None}, "FCM_CREDENTIALS_FILE"),
        ({"fcm_base_url": "http://fake-fcm:8080"}, "FCM_BASE_URL"),
    ],
)
def test_production_refuses_each_unsafe_push_setting_by_name(
    production: None, unsafe: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        NotificationSettings(**(FCM | unsafe))


def test_the_same_settings_are_accepted_outside_production() -> None:
    settings = NotificationSettings(push_backend="file", fcm_base_url="http://fake-fcm:8080")
    assert settings.push_backend == "file"


@pytest.mark.parametrize("size", [0, 501])
def test_a_push_batch_is_one_to_five_hundred_messages(size: int) -> None:
    with pytest.raises(ValidationError, match=r"PUSH_BATCH_SIZE must be 1\.\.500"):
        NotificationSettings(push_batch_size=size)
