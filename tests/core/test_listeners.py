"""`python -m app serve --workers N`: a listening socket per server process (SO_REUSEPORT), so
that the kernel spreads connections over the processes, and a busy port still refused."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import httpx
import pytest

from app.core import listeners
from app.core.config import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not listeners.REUSE_PORT, reason="no SO_REUSEPORT here")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on 127.0.0.1:port, from the kernel's own table."""
    wanted = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == wanted and row.split()[3] == "0A")


def serve(port: int, database_url: str, *extra_env: tuple[str, str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
        **dict(extra_env),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def two_processes(database_url: str) -> Iterator[tuple[int, int]]:
    public, internal = free_port(), free_port()
    process = serve(public, database_url, ("INTERNAL_PORT", str(internal)))
    try:
        deadline = time.monotonic() + 60
        # Both processes listening (the supervisor's own socket never listens).
        while listening_sockets(public) < 2 or listening_sockets(internal) < 2:
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "gave up waiting for two listeners"
            time.sleep(0.1)
        yield public, internal
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_each_server_process_listens_on_a_socket_of_its_own(two_processes: tuple[int, int]) -> None:
    public, internal = two_processes
    assert listening_sockets(public) == 2
    assert listening_sockets(internal) == 2
    for port in (public, internal):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200


@pytest.mark.slow
def test_serve_refuses_a_port_already_listened_on(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        # Refused before the database is even opened.
        process = serve(busy.getsockname()[1], f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert b"serve.cannot_listen" in output


def test_a_second_reuse_port_bind_on_a_busy_port_is_refused() -> None:
    with listeners.bind("127.0.0.1", 0, reuse_port=True) as first:
        first.listen()
        with pytest.raises(OSError):
            listeners.bind("127.0.0.1", first.getsockname()[1], reuse_port=True)


def test_a_spawned_process_receives_its_own_socket_on_the_same_address() -> None:
    with listeners.bind("127.0.0.1", 0, reuse_port=True) as parent:
        received = pickle.loads(ForkingPickler.dumps(parent))  # noqa: S301 - our own bytes
        with received:
            assert received.fileno() != parent.fileno()
            assert received.getsockname() == parent.getsockname()
            assert received.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
