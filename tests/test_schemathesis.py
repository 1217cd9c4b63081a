"""schemathesis over the served OpenAPI document, anonymous and as each role (citizen, ward
staff, city admin): no answer is a server error (`not_a_server_error`), an operation that asks
for a token refuses a request without one or with a forged one (`ignored_auth`), and every
status code is one the document declares (`status_code_conformance`).

Bounded and repeatable: schemathesis's coverage phase (deterministic) plus FUZZ_EXAMPLES
Hypothesis examples per operation and caller with a fixed seed. A longer run by hand:
`FUZZ_EXAMPLES=200 .venv/bin/pytest tests/test_schemathesis.py`.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, status_code_conformance
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import errors
from app.dossiers.service import sync_catalogue
from app.main import create_app
from tests.support.dossiers import birth_body, idem, upload_pdf
from tests.support.flows import bearer, login, make_user, seed_wards
from tests.support.fuzzing import Finding, exercise_operation, one_server_process, server_tracebacks
from tests.support.servers import free_port

CHECKS = [not_a_server_error, ignored_auth, status_code_conformance]
# Random examples per operation and caller, after the coverage phase. On PostgreSQL the
# coverage phase (boundary values, wrong types, NUL, huge numbers: what a dialect refuses) runs
# alone, with the real-resource pass, to keep `make test` bounded; FUZZ_EXAMPLES sets both.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
DEFAULT_BACKEND_EXAMPLES = {"sqlite": FUZZ_EXAMPLES, "postgresql": 0}
ROLES = {  # role -> (phone, ward)
    "citizen": ("0912000001", None),
    "ward_staff": ("0981000001", "TNG-PDP"),
    "city_admin": ("0987000001", None),
}
# Operations that end the caller's session (or account) run last for each caller.
SESSION_ENDING = {
    "POST /api/v1/auth/logout",
    "DELETE /api/v1/me",
    "DELETE /api/v1/me/sessions/{session_id}",
}

# Failures a domain owes a fix for (issue #23, "Beyond the list"): (caller or "*", operation,
# check, a text the failure's message contains). Delete an entry when its fix lands; the test
# fails on an entry that no longer matches anything, so the list only shrinks.
KNOWN: set[tuple[str, str, str, str]] = set()


# ------------------------------------------------------------------ the served document


@pytest.fixture
def server(database_url: str, db: AsyncSession) -> Iterator[tuple[str, IO[str]]]:
    # The camera webhook configured, as in production (unconfigured, it answers 503).
    secret = "whsec_" + base64.b64encode(b"schemathesis-camera-secret").decode()
    with one_server_process({"CAMERA_WEBHOOK_SECRETS": secret}) as served:
        yield served


@pytest.fixture
async def tokens(server: tuple[str, IO[str]], db: AsyncSession) -> AsyncIterator[dict[str, dict]]:
    base, _ = server
    await seed_wards(db)
    await sync_catalogue(db)
    await db.commit()
    out: dict[str, dict] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for role, (phone, ward) in ROLES.items():
            await make_user(db, phone, role, ward)
            out[role] = await login(http, phone)
    yield out


@pytest.fixture
async def resources(
    server: tuple[str, IO[str]], tokens: dict[str, dict], db: AsyncSession
) -> dict[str, str]:
    """Real things for the path parameters, so the fuzzer gets past the 404s: the citizen's
    upload, a dossier filed in the ward staff's ward and an incident reported there."""
    base, _ = server
    citizen = bearer(tokens["citizen"])
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        media_id = await upload_pdf(http, citizen)
        filed = await http.post(
            "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen)
        )
        assert filed.status_code == 201, filed.text
        reported = await http.post(
            "/api/v1/incidents",
            headers=citizen,
            json={"category": "flooding", "lat": 21.5930, "lon": 105.8445},
        )
        assert reported.status_code == 201, reported.text
        me = (await http.get("/api/v1/me", headers=citizen)).json()
    return {
        "media_id": media_id,
        "code": filed.json()["code"],
        "incident_id": reported.json()["id"],
        "citizen_id": me["id"],
    }


def _path_parameter_names(operation: Any) -> list[str]:
    return [
        parameter["name"]
        for parameter in operation.definition.raw.get("parameters", [])
        if parameter.get("in") == "path"
    ]


def _known(finding: Finding, entry: tuple[str, str, str, str]) -> bool:
    caller, operation, check, text = entry
    return (
        caller in ("*", finding.role)
        and operation == finding.operation
        and check == finding.check
        and text in finding.message
    )


@pytest.mark.slow
def test_fuzzing_the_served_openapi_finds_no_server_error_ignored_auth_or_undocumented_status(
    server: tuple[str, IO[str]],
    tokens: dict[str, dict],
    resources: dict[str, str],
    backend: str,
) -> None:
    base, log = server
    examples = FUZZ_EXAMPLES if "FUZZ_EXAMPLES" in os.environ else DEFAULT_BACKEND_EXAMPLES[backend]
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: op.label in SESSION_ENDING,
    )
    callers: dict[str, dict[str, str]] = {
        "anonymous": {},
        **{role: bearer(t) for role, t in tokens.items()},
    }
    findings: list[Finding] = []
    seconds: dict[str, int] = {}
    with requests.Session() as session:
        for caller, headers in callers.items():
            began = time.monotonic()
            for operation in operations:
                # An operation that asks for no token reads none: anonymous covers it.
                if headers and not operation.definition.raw.get("security"):
                    continue
                findings += exercise_operation(
                    operation,
                    base_url=base,
                    role=caller,
                    headers=headers,
                    checks=CHECKS,
                    fuzz_examples=examples,
                    session=session,
                    other_methods=caller == "anonymous",
                )
                known = {
                    name: resources[name]
                    for name in _path_parameter_names(operation)
                    if name in resources
                }
                if headers and known:
                    findings += exercise_operation(
                        operation,
                        base_url=base,
                        role=caller,
                        headers=headers,
                        checks=CHECKS,
                        fuzz_examples=FUZZ_EXAMPLES,
                        session=session,
                        path_parameters=known,
                    )
            seconds[caller] = round(time.monotonic() - began)
    print(
        f"schemathesis: {len(operations)} operations, {time.monotonic() - started:.0f} s {seconds}"
    )
    unexpected = [f for f in findings if not any(_known(f, entry) for entry in KNOWN)]
    stale = [entry for entry in KNOWN if not any(_known(f, entry) for f in findings)]
    report = "\n\n".join(map(str, unexpected))
    assert not unexpected, (
        f"{len(unexpected)} failures:\n\n{report}\n\nserver log:\n"
        + (server_tracebacks(log)[-20000:])
    )
    assert not stale, f"fixed now, remove from KNOWN: {stale}"


def test_the_document_declares_the_body_and_token_problems_every_route_can_answer() -> None:
    """A malformed or oversized body and a missing or forged token are answered by the core
    whatever the route: every operation with a body or a token says so."""
    document = create_app(run_worker=False).openapi()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = {
                code
                for status, response in operation["responses"].items()
                for code in response.get("content", {})
                .get(errors.PROBLEM_JSON, {})
                .get("examples", {})
            }
            content = operation.get("requestBody", {}).get("content", {})
            expected = set()
            if content:
                expected |= {errors.BODY_TOO_LARGE.code, errors.VALIDATION_FAILED.code}
            if "application/json" in content:
                expected.add(errors.MALFORMED_JSON.code)
            if operation.get("security"):
                expected |= {errors.UNAUTHENTICATED.code, errors.TOKEN_INVALID.code}
            if expected - declared:
                missing.append((method.upper(), path, sorted(expected - declared)))
    assert not missing


# ------------------------------------------------------------------ the harness can fail


_OPTIONAL_TOKEN = HTTPBearer(auto_error=False)


def _careless_app() -> FastAPI:
    """An API with one of each fault the checks exist for."""
    api = FastAPI()

    @api.get("/ignores-its-token", responses={401: {}})
    def ignores_its_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_OPTIONAL_TOKEN)],
    ) -> dict[str, Any]:
        return {"ok": True}

    @api.get("/crashes", responses={500: {"description": "documented, still a fault"}})
    def crashes(n: int = 0) -> dict[str, Any]:
        return {"ratio": 1 / n}

    @api.get("/says-what-it-does-not-document")
    def undocumented() -> dict[str, Any]:
        raise HTTPException(status_code=409)

    return api


@pytest.fixture
def careless_api() -> Iterator[str]:
    port = free_port()
    served = uvicorn.Server(uvicorn.Config(_careless_app(), port=port, log_level="critical"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    while not served.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=10)


def test_each_check_reports_the_fault_it_exists_for(careless_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{careless_api}/openapi.json")
    found: dict[str, set[str]] = {}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for caller, headers in {
                "anonymous": {},
                "forger": {"Authorization": "Bearer x"},
            }.items():
                for finding in exercise_operation(
                    operation,
                    base_url=careless_api,
                    role=caller,
                    headers=headers,
                    checks=CHECKS,
                    fuzz_examples=5,
                    session=session,
                ):
                    found.setdefault(operation.label, set()).add(finding.check)
    assert found == {
        "GET /ignores-its-token": {"IgnoredAuth"},
        "GET /crashes": {"ServerError"},
        "GET /says-what-it-does-not-document": {"UndefinedStatusCode"},
    }
