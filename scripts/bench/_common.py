"""Shared helpers for the benchmarks under scripts/bench/.

Everything here talks only to 127.0.0.1: a fresh database (SQLite file in a temp dir, or a new
database on the local PostgreSQL server, dropped afterwards), the real server started with
`python -m app serve`, and `wrk` (Debian package) as the load generator. wrk's own summary is
printed by a Lua `done()` hook as one JSON line, so parsing does not depend on its human format.
`CpuMeter` counts the CPU time the server's processes (and a PostgreSQL database's backends) use
during a measurement: on a machine shared with other work, CPU per request is steadier than
requests per second.

    with fresh_database("postgresql") as db:
        env = app_env(db.url, DATABASE_POOL_SIZE="10")
        migrate(env)
        with serve(env, workers=2) as server:
            meter = CpuMeter(server.process.pid, db.name)
            with meter.measure() as cpu:
                result = run_wrk(f"{server.base_url}/healthz")
            print(result.rps, result.p99_ms, cpu[0].server_s / result.requests)

Benchmarks print figures; they are not tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DEFAULT_PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
WRK_MARKER = "WRK_JSON "


class BenchError(RuntimeError):
    """The benchmark could not run (server did not start, tool missing, ...)."""


# ------------------------------------------------------------------ small utilities


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed (Debian: apt-get install -y wrk)")
    return path


def timed_median_ms(func: Any, repeat: int) -> float:
    """Median wall time of `func()` in milliseconds over `repeat` calls (after one warm-up)."""
    func()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return samples[len(samples) // 2]


# ------------------------------------------------------------------ databases


@dataclass
class Database:
    backend: str  # "sqlite" | "postgresql"
    url: str

    @property
    def name(self) -> str:
        """The PostgreSQL database name (or the SQLite file path)."""
        return self.url.rsplit("/", 1)[1] if self.backend == "postgresql" else self.url[18:]


async def _pg_admin(server_url: str, sql: str) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


_FREE_CONNECTIONS_SQL = """
    SELECT current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - (SELECT count(*) FROM pg_stat_activity)
"""


def pg_free_connections(server_url: str = DEFAULT_PG_SERVER, reserve: int = 10) -> int:
    """Connections still free on the (shared) PostgreSQL server, keeping `reserve` for others."""
    try:
        free = asyncio.run(_pg_admin(server_url, _FREE_CONNECTIONS_SQL))
    except Exception as exc:
        raise BenchError(f"cannot reach PostgreSQL at {server_url}: {exc}") from exc
    return max(0, int(free) - reserve)


@contextlib.contextmanager
def fresh_database(
    backend: str, *, pg_server: str = DEFAULT_PG_SERVER, prefix: str = "bench"
) -> Iterator[Database]:
    """A new, empty database for one backend; removed (dropped) on exit."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            yield Database("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(pg_server, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise BenchError(f"cannot create a PostgreSQL database on {pg_server}: {exc}") from exc
    try:
        yield Database("postgresql", f"{pg_server}/{name}")
    finally:
        asyncio.run(_pg_admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def app_env(database_url: str, **overrides: str) -> dict[str, str]:
    """Environment for `python -m app ...` against `database_url`."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "RUN_WORKER_IN_PROCESS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def run_cli(args: list[str], env: Mapping[str, str], *, timeout: float = 120) -> dict[str, Any]:
    """Run `python -m app <args> --format json` and return its JSON object."""
    proc = subprocess.run(
        [PYTHON, "-m", "app", *args, "--format", "json"],
        cwd=PROJECT_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"`python -m app {' '.join(args)}` failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return dict(json.loads(lines[-1]))


def migrate(env: Mapping[str, str]) -> None:
    run_cli(["migrate"], env)


# ------------------------------------------------------------------ the server


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise BenchError(
                    f"server exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                response = client.get(f"{server.base_url}/readyz")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
    raise BenchError(f"server not ready after {timeout:.0f}s ({last}):\n{server.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server we started: its own process group (uvicorn's supervisor and workers)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def serve(
    env: Mapping[str, str],
    *,
    workers: int = 2,
    ready_timeout: float = 60.0,
    log_dir: Path | None = None,
) -> Iterator[Server]:
    """Start `python -m app serve` on a free port of 127.0.0.1 and wait for /readyz."""
    port = free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bench-log-"))
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "app",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so stopping it reaches every worker
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        _stop(process)


# ------------------------------------------------------------------ wrk

# Prepended to every wrk script: remembers the threads so `done()` can sum their counters.
_LUA_PRELUDE = """
local __threads = {}
local __next_id = 0
function setup(thread)
  thread:set("thread_id", __next_id)
  __next_id = __next_id + 1
  table.insert(__threads, thread)
end
"""

# Appended: one machine-readable line; latencies in microseconds, counters summed over threads.
_LUA_DONE = """
function done(summary, latency, requests)
  local counters = {}
  for _, name in ipairs(__counter_names or {}) do
    local total = 0
    for _, thread in ipairs(__threads) do
      total = total + (tonumber(thread:get(name)) or 0)
    end
    table.insert(counters, string.format('"%s": %d', name, total))
  end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "counters": {%s}}\\n',
    "__MARKER__", summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout, table.concat(counters, ", ")))
end
""".replace("__MARKER__", WRK_MARKER)


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int  # responses with status >= 400 (wrk's "Non-2xx or 3xx responses")
    socket_errors: int  # connect + read + write + timeout
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> int:
        return self.status_errors + self.socket_errors


def parse_wrk(stdout: str) -> WrkResult:
    """Read the JSON line our `done()` hook prints."""
    for line in stdout.splitlines():
        if line.startswith(WRK_MARKER):
            data = json.loads(line[len(WRK_MARKER) :])
            return WrkResult(
                requests=data["requests"],
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                status_errors=data["status_errors"],
                socket_errors=(
                    data["connect_errors"]
                    + data["read_errors"]
                    + data["write_errors"]
                    + data["timeouts"]
                ),
                counters={k: int(v) for k, v in data["counters"].items()},
            )
    raise BenchError(f"wrk printed no summary:\n{stdout[-2000:]}")


def run_wrk(
    url: str,
    *,
    threads: int = 2,
    connections: int = 64,
    duration: str = "10s",
    timeout: str = "5s",
    headers: Mapping[str, str] | None = None,
    script: str = "",
    counters: tuple[str, ...] = (),
) -> WrkResult:
    """Run wrk against `url` (127.0.0.1 only).

    `script` is extra Lua (request/init/response functions); it sees the global `thread_id`
    (0-based) and may keep numeric globals named in `counters`, summed over threads in the result.
    """
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("benchmarks only load 127.0.0.1")
    wrk = require_wrk()
    names = ", ".join(f'"{name}"' for name in counters)
    lua = f"{_LUA_PRELUDE}\n__counter_names = {{{names}}}\n{script}\n{_LUA_DONE}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as f:
        f.write(lua)
        script_path = f.name
    try:
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}",
            f"--timeout={timeout}",
            "-s",
            script_path,
        ]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        command.append(url)
        seconds = _duration_seconds(duration)
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        os.unlink(script_path)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return parse_wrk(proc.stdout)


def _duration_seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    if duration[-1] in units:
        return float(duration[:-1]) * units[duration[-1]]
    return float(duration)


# ------------------------------------------------------------------ printing


def print_table(headers: list[str], rows: list[list[str]], *, out: Any = None) -> None:
    out = out or sys.stdout
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [
                str(first).ljust(widths[0]),
                *(str(c).rjust(w) for c, w in zip(rest, widths[1:], strict=True)),
            ]
        )

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)


# ------------------------------------------------------------------ CPU accounting


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (all their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def pg_backend_pids(database: str) -> list[int]:
    """PostgreSQL backends serving `database` on this machine (their title names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            pids.append(int(proc.name))
    return pids


@dataclass
class CpuUse:
    """CPU seconds used during one measurement by the server and by the database backends."""

    server_s: float
    database_s: float | None


class CpuMeter:
    """Counts CPU used by the server's processes and, on PostgreSQL, the database's backends.

    Backends that start and exit inside one measurement are missed (a small undercount).
    """

    def __init__(self, server_pid: int, pg_database: str | None) -> None:
        self.server_pid = server_pid
        self.pg_database = pg_database

    def _snapshot(self) -> tuple[float, dict[int, float]]:
        server = cpu_seconds(process_tree(self.server_pid))
        backends = {}
        if self.pg_database:
            backends = {pid: cpu_seconds([pid]) for pid in pg_backend_pids(self.pg_database)}
        return server, backends

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[CpuUse]]:
        out: list[CpuUse] = []
        server0, backends0 = self._snapshot()
        yield out
        server1, backends1 = self._snapshot()
        database = None
        if self.pg_database:
            database = sum(used - backends0.get(pid, 0.0) for pid, used in backends1.items())
        out.append(CpuUse(server1 - server0, database))
