"""The committed contracts (OpenAPI, error catalogue) are what the code answers with."""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import contracts
from app.core.config import PROJECT_ROOT
from app.core.errors import PROBLEM_JSON, REGISTRY

HOW_TO_FIX = "the committed contract is out of date: run `make openapi` and commit the result"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    return contracts.rendered_contracts()


@pytest.fixture(scope="module")
def openapi(generated: dict[Path, str]) -> dict[str, Any]:
    return json.loads(generated[contracts.OPENAPI_FILE])


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in sorted(document["paths"].items())
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def drift(committed: Any, generated: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as JSON-pointer-like paths (the first few)."""
    if isinstance(committed, dict) and isinstance(generated, dict):
        found = []
        for key in sorted(committed.keys() | generated.keys()):
            if key not in generated:
                found.append(f"{where}/{key} (only committed)")
            elif key not in committed:
                found.append(f"{where}/{key} (only in code)")
            else:
                found += drift(committed[key], generated[key], f"{where}/{key}")
        return found
    return [] if committed == generated else [where or "/"]


@pytest.mark.parametrize(
    "relative", [contracts.OPENAPI_FILE, contracts.ERRORS_FILE], ids=lambda p: str(p)
)
def test_committed_contract_matches_the_code(relative: Path, generated: dict[Path, str]):
    committed_path = PROJECT_ROOT / relative
    assert committed_path.exists(), f"{relative} is missing: {HOW_TO_FIX}"
    committed = json.loads(committed_path.read_text(encoding="utf-8"))
    from_code = json.loads(generated[relative])

    differences = drift(committed, from_code)
    assert not differences, f"{relative}: {HOW_TO_FIX}. Differs at: {differences[:15]}"


def test_every_api_operation_documents_a_problem_response(openapi: dict[str, Any]):
    lacking = []
    for method, path, operation in operations(openapi):
        if not path.startswith("/api/"):
            continue
        if (
            not operation.get("parameters")
            and "requestBody" not in operation
            and "security" not in operation
            and method.upper() in {"GET", "OPTIONS"}
        ):
            continue  # a fixed public answer: nothing a client sends can be wrong
        problems = [
            status
            for status, response in operation["responses"].items()
            if status.startswith("4") and PROBLEM_JSON in response.get("content", {})
        ]
        if not problems:
            lacking.append(f"{method} {path}")
    assert not lacking, f"no 4xx problem response documented (use responses=...): {lacking}"


OAUTH_PAGES = {"/oauth/authorize", "/oauth/login", "/oauth/consent"}
OAUTH_ENDPOINTS = {
    "/oauth/token",
    "/oauth/par",
    "/oauth/introspect",
    "/oauth/revoke",
    "/oauth/userinfo",
}


def test_error_responses_are_documented_as_problem_json_with_the_problem_schema(
    openapi: dict[str, Any],
):
    wrong = []
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            content = response.get("content", {})
            if path in OAUTH_PAGES and set(content) == {"text/html"}:
                continue  # a browser's page says what went wrong; a partner never reads it
            if path in OAUTH_ENDPOINTS:
                # RFC 6749 5.2 / RFC 6750 3: partners' libraries parse the OAuth error object.
                schema = content.get("application/json", {}).get("schema", {})
                if set(content) != {"application/json"} or schema != {
                    "$ref": "#/components/schemas/OAuthError"
                }:
                    wrong.append(f"{method} {path} {status}: {sorted(content)} {schema}")
                continue
            if path.startswith("/open311/") and status != "413" and status != "422":
                # GeoReport v2 clients parse Open311's own error list, in JSON or XML.
                schema = content.get("application/json", {}).get("schema", {})
                if schema.get("items") != {"$ref": "#/components/schemas/Open311ErrorOut"}:
                    wrong.append(f"{method} {path} {status}: {sorted(content)} {schema}")
                continue
            schema = content.get(PROBLEM_JSON, {}).get("schema", {})
            if set(content) != {PROBLEM_JSON} or schema != {"$ref": "#/components/schemas/Problem"}:
                wrong.append(f"{method} {path} {status}: {sorted(content)} {schema}")
    assert not wrong, wrong
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


def test_documented_problem_examples_use_catalogued_codes(openapi: dict[str, Any]):
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            examples = response.get("content", {}).get(PROBLEM_JSON, {}).get("examples", {})
            for code, example in examples.items():
                assert code in REGISTRY, f"{method} {path}: unknown code {code}"
                assert example["value"]["code"] == code
                assert str(REGISTRY[code].status) == status, f"{method} {path}: {code}"


def placeholders(template: str) -> set[str]:
    """Names in braces; `reason_vi` and `reason_en` count as one language-specific `reason`."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return {re.sub(r"_(vi|en)$", "", name) for name in names}


def test_every_error_code_has_distinct_vietnamese_and_english_messages(generated):
    catalogue = json.loads(generated[contracts.ERRORS_FILE])["codes"]
    assert catalogue.keys() == REGISTRY.keys()
    assert {
        "request.validation_failed",
        "request.malformed_json",
        "http.not_found",
        "internal.error",
    } <= catalogue.keys()
    for code, entry in catalogue.items():
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", code), code
        assert 400 <= entry["status"] <= 599, code
        vi, en = entry["vi"].strip(), entry["en"].strip()
        assert vi and en, f"{code}: empty message"
        assert vi != en, f"{code}: the Vietnamese message is the English one"
        assert placeholders(vi) == placeholders(en), f"{code}: placeholders differ"


def test_openapi_output_does_not_depend_on_hash_seed_or_settings(generated, tmp_path):
    """`python -m app openapi` writes the same bytes in another process with other settings."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "MAX_REQUEST_BODY_BYTES": "17",
        "PUBLIC_BASE_URL": "https://id.example.test",
        "PASSWORD_MIN_LENGTH": "15",
        "OTP_TTL_SECONDS": "42",
        "LOG_FORMAT": "console",
    }
    script = (
        "import sys; from pathlib import Path; from app.contracts import write_contracts; "
        "write_contracts(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )

    for relative, text in generated.items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text, relative
