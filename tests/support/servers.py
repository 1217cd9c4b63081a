"""The production layout for race tests: `python -m app serve --workers 2` (two server processes,
one listening socket each, the kernel spreading connections) on the session's test database.

Attack tests prepare state through the in-process `client`/`db` fixtures, then fire their
concurrent requests at these two processes over real HTTP, so the race crosses processes and
database connections exactly as it would in production. Requests come from 127.0.0.1, which
uvicorn trusts for `X-Forwarded-For`: a test plays many client addresses with that header.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from app.core.config import PROJECT_ROOT

SERVE = "import sys; from app.__main__ import main; sys.exit(main(sys.argv[1:]))"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def two_server_processes(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve the current test database from two processes; yields the base URL."""
    port = free_port()
    env = {
        **os.environ,
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("server did not become ready")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def two_servers(backend: str) -> Iterator[str]:
    """Two server processes on PostgreSQL (races are a PostgreSQL property; SQLite serialises
    every writer, and its race tests run in-process)."""
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    with two_server_processes() as base:
        yield base


def forwarded_for(n: int) -> dict[str, str]:
    """Headers that make request `n` come from a distinct client address."""
    return {"X-Forwarded-For": f"198.51.{n // 250}.{n % 250 + 1}"}
