"""The mobile contracts the server is held to: push payload schemas and the deep-link catalogue."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from app.core.config import PROJECT_ROOT

PUSH_DIR = PROJECT_ROOT / "mobile_contracts" / "push"


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((PUSH_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def deep_link_patterns() -> list[re.Pattern[str]]:
    catalogue = json.loads((PROJECT_ROOT / "mobile_contracts" / "deep_links.json").read_text())
    return [re.compile(link["regex"]) for link in catalogue["links"]]


def assert_valid_push(message: dict[str, Any]) -> str:
    """Validate one FCM message as sent (envelope and data); returns its kind."""
    validator("message").validate(message)
    kind = message["data"]["kind"]
    validator(kind).validate(message["data"])
    link = message["data"]["deep_link"]
    assert any(p.match(link) for p in deep_link_patterns()), link
    return kind
