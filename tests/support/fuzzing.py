"""Fuzzing the served OpenAPI document with schemathesis (tests/test_schemathesis.py).

One real server process (uvicorn, `python -m app serve`) on the session's test database, so the
fuzzer speaks real HTTP and every 500 carries the server's traceback on its stderr. Each
operation gets a bounded number of derandomized Hypothesis examples, valid and invalid data both;
every failure is collected (not only the first), so one run lists them all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import httpx
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.openapi.checks import IgnoredAuth, UndefinedStatusCode
from schemathesis.schemas import APIOperation

from app.core.config import PROJECT_ROOT
from tests.support.servers import SERVE, free_port

SEED = 23  # issue #23; any fixed number: the same cases every run


@contextmanager
def one_server_process(extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, IO[str]]]:
    """Serve the current test database (DATABASE_URL) from one process; yields the base URL and
    the file collecting its stderr (where a 500's traceback is logged)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": base,
        **(extra_env or {}),
    }
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--port", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"server exited: {log.read()[-2000:]}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                pytest.fail("server did not become ready")
            yield base, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class Finding:
    """One failed check: who asked, which operation, what failed, and how to replay it."""

    role: str
    operation: str  # "METHOD /path" as in the document
    check: str  # the failure's class: ServerError, UndefinedStatusCode, IgnoredAuth, ...
    message: str

    def __str__(self) -> str:
        return f"[{self.role}] {self.operation}: {self.check}\n{self.message}"


def exercise_operation(
    operation: APIOperation,
    *,
    base_url: str,
    role: str,
    headers: dict[str, str],
    checks: list[Callable[..., Any]],
    fuzz_examples: int,
    session: requests.Session,
    other_methods: bool = True,
    path_parameters: dict[str, str] | None = None,
) -> list[Finding]:
    """Every case of schemathesis's coverage phase (deterministic: boundary values, missing and
    wrongly typed fields, unexpected methods), then `fuzz_examples` Hypothesis examples with a
    fixed seed, valid and invalid data both. Every distinct failure is returned, not only the
    first; nothing is shrunk, so the time stays bounded. `other_methods=False` leaves out the
    coverage cases that send a method the path does not have (routing answers them, before any
    token is read: one caller is enough). With `path_parameters` (real resources the caller
    can see), only the fuzzing runs, with those parameters fixed and everything else generated."""
    findings: dict[tuple[str, str], Finding] = {}

    def call(case: Any) -> None:
        try:
            case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=checks, timeout=30
            )
        except (Exception, BaseExceptionGroup) as exc:  # every failure collected, reported together
            for failure in _failures(exc):
                key = (type(failure).__name__, _first_line(failure))
                if key not in findings:
                    findings[key] = Finding(
                        role, operation.label, type(failure).__name__, _describe(failure, case)
                    )

    if path_parameters:
        _fuzz(operation, call, fuzz_examples, path_parameters)
        return list(findings.values())
    schema = operation.schema
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for case in schema.iter_coverage_cases(
        operation,
        generation_modes=modes,
        generation_config=schema.config.generation_for(operation=operation),
    ):
        if other_methods or case.method.upper() == operation.method.upper():
            call(case)

    if fuzz_examples:
        _fuzz(operation, call, fuzz_examples)
    return list(findings.values())


def _fuzz(
    operation: APIOperation,
    call: Callable[[Any], None],
    examples: int,
    path_parameters: dict[str, str] | None = None,
) -> None:
    fixed = {"path_parameters": path_parameters} if path_parameters else {}
    strategies = [operation.as_strategy(GenerationMode.POSITIVE, **fixed)]
    # An operation with nothing that can be made invalid has no negative strategy.
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, **fixed))

    @seed(SEED)
    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=st.one_of(*strategies))
    def fuzz(case: Any) -> None:
        call(case)

    fuzz()


def _failures(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _failures(sub)]
    return [exc]


def _first_line(failure: BaseException) -> str:
    if isinstance(failure, UndefinedStatusCode):
        return str(failure.status_code)
    if isinstance(failure, IgnoredAuth):
        return str(failure.scenario)
    return (str(failure).splitlines() or [""])[0][:200]


def _describe(failure: BaseException, case: Any) -> str:
    try:
        curl = case.as_curl_command()
    except Exception:
        curl = repr(case)
    return f"{str(failure)[:1500]}\nReproduce: {curl[:2000]}"


def server_tracebacks(log: IO[str]) -> str:
    log.flush()
    log.seek(0)
    return log.read()
