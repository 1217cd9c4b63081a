"""The settings reference stays true: docs/settings.md is what the settings classes say (generated
by `make settings-doc`), every settings class is in it, and .env.example names every setting."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings

import app
from app.core.config import PROJECT_ROOT, SETTINGS_DOC, VAR_DIR, settings_reference
from app.main import settings_classes


def variables(settings: type[BaseSettings]) -> list[str]:
    prefix = settings.model_config.get("env_prefix", "") or ""
    return [(prefix + name).upper() for name in settings.model_fields]


def test_the_settings_reference_is_current() -> None:
    written = SETTINGS_DOC.read_text(encoding="utf-8")
    assert written == settings_reference(settings_classes()), "run `make settings-doc`"


def test_every_settings_class_of_the_app_is_in_the_reference() -> None:
    found = set()
    for package in pkgutil.iter_modules(app.__path__):
        if package.ispkg and (PROJECT_ROOT / "app" / package.name / "config.py").exists():
            module = importlib.import_module(f"app.{package.name}.config")
            found |= {
                value
                for value in vars(module).values()
                if isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.__module__ == module.__name__
            }
    assert found - set(settings_classes()) == set(), "add them to app.main.SETTINGS_CLASSES"


@pytest.mark.parametrize("settings", settings_classes(), ids=lambda s: s.__name__)
def test_every_setting_is_in_the_env_example(settings: type[BaseSettings]) -> None:
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    assert [n for n in variables(settings) if f"{n}=" not in example] == [], "add them"


def test_the_readme_points_to_the_reference() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/settings.md)" in readme


class Sample(BaseSettings):
    """A sample."""

    model_config = {"env_prefix": "SAMPLE_"}

    # Where the sink writes,
    # in two lines.
    sink: Path = VAR_DIR / "sink.jsonl"
    mode: Literal["file", "http"] = "file"  # how
    timeout: float = Field(default=2.5, description="Seconds | at most.")
    undocumented: list[int] = Field(default_factory=lambda: [1, 2])


def test_the_reference_says_each_variable_its_default_and_its_comment() -> None:
    page = settings_reference([Sample])
    assert "## Sample (`tests/test_documentation.py`)\n\nA sample.\n" in page
    rows = page.split("|---|---|---|\n")[1].splitlines()
    assert rows == [
        "| `SAMPLE_SINK` | `var/sink.jsonl` | Where the sink writes, in two lines. |",
        "| `SAMPLE_MODE` | `file` | how One of `file`, `http`. |",
        "| `SAMPLE_TIMEOUT` | `2.5` | Seconds \\| at most. |",
        "| `SAMPLE_UNDOCUMENTED` | `[1, 2]` |  |",
    ]
