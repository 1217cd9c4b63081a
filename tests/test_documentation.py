"""README.md and .env.example stay true: every setting is documented in both."""

from __future__ import annotations

import importlib

import pytest
from pydantic_settings import BaseSettings

from app.core.config import PROJECT_ROOT, Settings

DOMAIN_SETTINGS = [
    ("app.dossiers.config", "DossierSettings"),
    ("app.media.config", "MediaSettings"),
    ("app.incidents.config", "IncidentSettings"),
    ("app.oauth.config", "OAuthSettings"),
]


def variables(settings: type[BaseSettings]) -> list[str]:
    prefix = settings.model_config.get("env_prefix", "") or ""
    return [(prefix + name).upper() for name in settings.model_fields]


def all_settings() -> list[type[BaseSettings]]:
    classes: list[type[BaseSettings]] = [Settings]
    for module, name in DOMAIN_SETTINGS:
        classes.append(getattr(importlib.import_module(module), name))
    return classes


@pytest.mark.parametrize("settings", all_settings(), ids=lambda s: s.__name__)
def test_every_setting_is_in_the_readme_and_env_example(settings):
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    names = variables(settings)
    assert [n for n in names if f"`{n}`" not in readme] == [], "document them in README.md"
    assert [n for n in names if f"{n}=" not in example] == [], "add them to .env.example"
