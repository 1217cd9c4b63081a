"""Benchmark of Thai Nguyen ID's hot paths against the real server, on SQLite and PostgreSQL.

For each backend: a fresh database, `python -m app migrate`, one citizen made with the CLI, many
sign-in sessions made in bulk (refresh tokens are single use: each wrk request gets its own), then
`python -m app serve --workers 2` and wrk (`-t2 -c64 -d10s` by default) on

  * GET /healthz            the baseline: a bare endpoint of the same app, same middleware
  * GET /api/v1/me          authenticated (bearer access token from a real HTTP login)
  * POST /api/v1/auth/refresh  refresh-token rotation, a distinct unused token per request

It prints requests/s, p50/p99 and each endpoint's ratio to the baseline measured in the same run
(before and after the others; the ratio uses their mean), the server's and PostgreSQL's CPU time
per request (steadier than requests/s when other work shares the machine), and the argon2id cost
per hash. Targets (2-core machine, wrk on the same machine): /me at least 40%
of the baseline's throughput; refresh at least 600/s on PostgreSQL. It is a script, not a test:
it exits non-zero when the server does not start or a request fails, and with --strict also when
a target is missed.

    .venv/bin/python scripts/bench/identity.py [--backends sqlite,postgresql] [--duration 10s]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import (
    DEFAULT_PG_SERVER,
    PROJECT_ROOT,
    BenchError,
    CpuMeter,
    CpuUse,
    WrkResult,
    app_env,
    fresh_database,
    migrate,
    pg_free_connections,
    print_table,
    require_wrk,
    run_cli,
    run_wrk,
    serve,
    timed_median_ms,
)

PHONE = "0912345678"
PASSWORD = "Bench-Thai-Nguyen-2026!"
ME_TARGET_RATIO = 0.40
REFRESH_TARGET_PG = 600.0

REFRESH_LUA = """
local tokens = {}
local next_token = 1
exhausted = 0
function init(args)
  -- This thread's slice of the token file: lines i with (i mod THREADS) == thread_id.
  local i = 0
  for line in io.lines("__TOKENS__") do
    if i % __THREADS__ == thread_id then tokens[#tokens + 1] = line end
    i = i + 1
  end
end
function request()
  if next_token > #tokens then
    -- Out of tokens: never resend one (that is a reuse and revokes the session); stop.
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  local token = tokens[next_token]
  next_token = next_token + 1
  return wrk.format("POST", "/api/v1/auth/refresh", {["Content-Type"] = "application/json"},
                    '{"refresh_token":"' .. token .. '"}')
end
"""


@dataclass
class BackendResult:
    backend: str
    endpoints: dict[str, dict[str, float]] = field(default_factory=dict)
    sessions_made: int = 0
    session_seconds: float = 0.0
    logins: list[int] = field(default_factory=list)
    login_ms: list[float] = field(default_factory=list)
    login_limit_per_minute: int = 0
    tokens_exhausted: bool = False
    server_errors: list[str] = field(default_factory=list)
    server_log: str = ""
    pool_size: int = 0
    spent_tokens: int = 0
    revoked_sessions: int = 0


# ------------------------------------------------------------------ set-up


async def _make_sessions(database_url: str, user_id: uuid.UUID, count: int) -> list[str]:
    """`count` sessions, each with one unused refresh token, in a few bulk INSERTs.

    The rows are built from the same models, defaults and keyed hash as
    `app.tokens.service.start_session` (which flushes twice per session: far too slow for 30k).
    """
    from datetime import timedelta

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core import clock
    from app.core.security import random_token
    from app.tokens.config import get_token_settings
    from app.tokens.models import AuthSession, RefreshToken
    from app.tokens.service import REFRESH_PREFIX, hash_refresh_token

    now = clock.now()
    expires = now + timedelta(days=get_token_settings().refresh_token_ttl_days)
    tokens: list[str] = []
    engine = create_async_engine(database_url)
    try:
        for start in range(0, count, 5000):
            sessions, refresh_rows = [], []
            for _ in range(start, min(count, start + 5000)):
                auth = AuthSession(
                    user_id=user_id,
                    device_name="wrk",
                    user_agent="wrk",
                    ip="127.0.0.1",
                    acr="urn:thainguyen:id:loa:0",
                    auth_time=now,
                    created_at=now,
                    last_used_at=now,
                    expires_at=expires,
                )
                token = random_token(REFRESH_PREFIX)
                tokens.append(token)
                sessions.append(auth.model_dump())
                refresh_rows.append(
                    RefreshToken(
                        session_id=auth.id, token_hash=hash_refresh_token(token)
                    ).model_dump()
                )
            async with engine.begin() as conn:
                await conn.execute(sa.insert(AuthSession.__table__), sessions)  # type: ignore[attr-defined]
                await conn.execute(sa.insert(RefreshToken.__table__), refresh_rows)  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    return tokens


async def _token_outcome(database_url: str) -> tuple[int, int]:
    """(refresh tokens spent, sessions revoked): reuse detection must not have fired."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            spent = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
                )
            ).scalar_one()
            revoked = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM auth_sessions WHERE revoked_at IS NOT NULL")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return int(spent), int(revoked)


def _login(base_url: str, outcome: BackendResult) -> str | None:
    """Sign in over HTTP; record the status and the wall time (argon2 verify included)."""
    started = time.perf_counter()
    response = httpx.post(
        f"{base_url}/api/v1/auth/login",
        json={"phone": PHONE, "password": PASSWORD, "device_name": "bench"},
        timeout=30,
    )
    outcome.login_ms.append((time.perf_counter() - started) * 1000)
    outcome.logins.append(response.status_code)
    return response.json().get("access_token") if response.status_code == 200 else None


def _check_me(base_url: str, access_token: str) -> None:
    """Both workers must accept the token before we measure (a 401 here would skew /me)."""
    with httpx.Client(headers={"Authorization": f"Bearer {access_token}"}, timeout=10) as client:
        for _ in range(20):
            response = client.get(f"{base_url}/api/v1/me")
            if response.status_code != 200:
                raise BenchError(
                    f"GET /api/v1/me answered {response.status_code}: {response.text[:500]}"
                )


# ------------------------------------------------------------------ one backend


def _server_5xx(log_lines: list[str]) -> dict[str, list[float]]:
    """Durations (ms) of the 5xx answers the server logged, by path.

    wrk counts only answers that arrive within the run; a request stuck longer (e.g. waiting for
    SQLite's write lock) answers after wrk stopped and only the server's log shows it.
    """
    found: dict[str, list[float]] = {}
    for line in log_lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "request" and int(event.get("status", 0)) >= 500:
            found.setdefault(str(event.get("path")), []).append(float(event.get("ms", 0)))
    return found


def _summary(result: WrkResult, cpu: CpuUse, baseline_rps: float) -> dict[str, float]:
    requests = max(result.requests, 1)
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "failed": result.failed,
        "non_2xx": result.status_errors,
        "socket_errors": result.socket_errors,
        "ratio": result.rps / baseline_rps if baseline_rps else 0.0,
        "server_cpu_ms": 1000 * cpu.server_s / requests,
        "db_cpu_ms": -1.0 if cpu.database_s is None else 1000 * cpu.database_s / requests,
    }


def bench_backend(backend: str, args: argparse.Namespace) -> BackendResult:
    outcome = BackendResult(backend)
    pool_size = args.pool_size
    if backend == "postgresql":
        # The server is shared: each worker may open pool_size + overflow (as much again).
        pool_size = max(
            2, min(pool_size, pg_free_connections(args.pg_server) // (2 * args.workers))
        )
        if pool_size < args.pool_size:
            print(f"[{backend}] DATABASE_POOL_SIZE lowered to {pool_size}: the server is busy")
    outcome.pool_size = pool_size
    load = {
        "threads": args.threads,
        "connections": args.connections,
        "duration": args.duration,
        "timeout": args.timeout,
    }
    with fresh_database(backend, pg_server=args.pg_server) as db:
        env = app_env(db.url, DATABASE_POOL_SIZE=str(pool_size))
        print(f"[{backend}] migrating a fresh database", flush=True)
        migrate(env)
        user = run_cli(
            [
                "users",
                "create",
                "--phone",
                PHONE,
                "--password",
                PASSWORD,
                "--name",
                "Bench Citizen",
                "--role",
                "citizen",
            ],
            env,
        )
        print(f"[{backend}] making {args.sessions} sessions", flush=True)
        started = time.perf_counter()
        tokens = asyncio.run(_make_sessions(db.url, uuid.UUID(user["id"]), args.sessions))
        outcome.session_seconds = time.perf_counter() - started
        outcome.sessions_made = len(tokens)

        with tempfile.TemporaryDirectory(prefix="bench-identity-") as tmp:
            token_file = Path(tmp) / "refresh-tokens.txt"
            token_file.write_text("\n".join(tokens) + "\n")
            del tokens
            print(f"[{backend}] starting the server ({args.workers} workers)", flush=True)
            with serve(env, workers=args.workers, log_dir=Path(tmp)) as server:
                access = _login(server.base_url, outcome)
                if access is None:
                    raise BenchError(f"login answered {outcome.logins}\n{server.log_tail()}")
                _check_me(server.base_url, access)
                bearer = {"Authorization": f"Bearer {access}"}

                # Warm-up (connection pools, lazy imports), not measured.
                run_wrk(f"{server.base_url}/healthz", **{**load, "duration": "2s"})
                run_wrk(
                    f"{server.base_url}/api/v1/me", headers=bearer, **{**load, "duration": "2s"}
                )

                print(f"[{backend}] measuring", flush=True)
                meter = CpuMeter(server.process.pid, db.name if backend == "postgresql" else None)
                with meter.measure() as base_cpu:
                    base = run_wrk(f"{server.base_url}/healthz", **load)
                with meter.measure() as me_cpu:
                    me = run_wrk(f"{server.base_url}/api/v1/me", headers=bearer, **load)
                lua = REFRESH_LUA.replace("__TOKENS__", str(token_file))
                lua = lua.replace("__THREADS__", str(args.threads))
                with meter.measure() as refresh_cpu:
                    refresh = run_wrk(
                        f"{server.base_url}/api/v1/auth/refresh",
                        script=lua,
                        counters=("exhausted",),
                        **load,
                    )
                # The baseline again: the ratios use the mean of both, so drift in the load
                # others put on the machine during the run biases them less.
                with meter.measure() as base_cpu_after:
                    base_after = run_wrk(f"{server.base_url}/healthz", **load)

                # A second login after the load: the per-IP login limit must not have tripped.
                _login(server.base_url, outcome)
                # At LOG_LEVEL=WARNING the server logs only problems (5xx, tracebacks); keep
                # the log beyond the temporary directory when there are any.
                outcome.server_errors = server.log_tail(1_000_000).splitlines()
                if outcome.server_errors:
                    kept = Path(tempfile.gettempdir()) / f"bench-identity-{backend}-server.log"
                    kept.write_bytes(server.log_path.read_bytes())
                    outcome.server_log = str(kept)

        baseline = (base.rps + base_after.rps) / 2
        outcome.endpoints = {
            "GET /healthz (baseline, before)": _summary(base, base_cpu[0], baseline),
            "GET /api/v1/me": _summary(me, me_cpu[0], baseline),
            "POST /api/v1/auth/refresh": _summary(refresh, refresh_cpu[0], baseline),
            "GET /healthz (baseline, after)": _summary(base_after, base_cpu_after[0], baseline),
        }
        outcome.tokens_exhausted = refresh.counters.get("exhausted", 0) > 0
        outcome.spent_tokens, outcome.revoked_sessions = asyncio.run(_token_outcome(db.url))
        from app.identity.config import get_identity_settings

        outcome.login_limit_per_minute = get_identity_settings().login_per_ip_per_minute
    return outcome


# ------------------------------------------------------------------ report


def argon2_ms() -> tuple[float, float]:
    """(hash, verify) milliseconds with the service's own argon2id parameters, one thread."""
    from app.core.security import _hasher as cached_hasher

    _hasher = cached_hasher()[0]

    encoded = _hasher.hash("bench-password")
    return (
        timed_median_ms(lambda: _hasher.hash("bench-password"), 5),
        timed_median_ms(lambda: _hasher.verify(encoded, "bench-password"), 5),
    )


def report(
    results: list[BackendResult],
    argon: tuple[float, float],
    args: argparse.Namespace,
    elapsed: float,
) -> list[str]:
    """Print the tables; return the problems (failed requests, missed targets)."""
    problems: list[str] = []
    misses: list[str] = []
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration} "
        f"--timeout {args.timeout}, "
        f"server --workers {args.workers}, "
        f"{os.cpu_count()} CPUs shared with wrk"
    )
    print(
        f"argon2id (t=3, m=64 MiB, p=2): {argon[0]:.1f} ms per hash, "
        f"{argon[1]:.1f} ms per verify (median of 5, one thread)"
    )
    for result in results:
        print()
        pool = f", DATABASE_POOL_SIZE={result.pool_size}" if result.backend != "sqlite" else ""
        print(f"== {result.backend}{pool}")
        rows = []
        for name, figures in result.endpoints.items():
            db_cpu = "-" if figures["db_cpu_ms"] < 0 else f"{figures['db_cpu_ms']:.2f}"
            rows.append(
                [
                    name,
                    f"{figures['rps']:.0f}",
                    f"{figures['p50_ms']:.1f}",
                    f"{figures['p99_ms']:.1f}",
                    f"{figures['ratio'] * 100:.0f}%",
                    f"{figures['server_cpu_ms']:.2f}",
                    db_cpu,
                    f"{int(figures['requests'])}",
                    f"{int(figures['non_2xx'])}",
                    f"{int(figures['socket_errors'])}",
                ]
            )
            if figures["failed"]:
                problems.append(
                    f"{result.backend}: {name}: {int(figures['non_2xx'])} non-2xx, "
                    f"{int(figures['socket_errors'])} timeouts/socket errors"
                )
        print_table(
            [
                "endpoint",
                "req/s",
                "p50 ms",
                "p99 ms",
                "vs base",
                "app CPU ms",
                "db CPU ms",
                "requests",
                "non-2xx",
                "timeouts/socket",
            ],
            rows,
        )
        me = result.endpoints["GET /api/v1/me"]
        refresh = result.endpoints["POST /api/v1/auth/refresh"]
        me_ok = me["ratio"] >= ME_TARGET_RATIO
        print(
            f"target /me >= {ME_TARGET_RATIO:.0%} of baseline: "
            f"{me['ratio']:.0%} {'ok' if me_ok else 'MISSED'}"
        )
        if not me_ok:
            misses.append(f"{result.backend}: /me at {me['ratio']:.0%} of baseline")
        if result.backend == "postgresql":
            ok = refresh["rps"] >= REFRESH_TARGET_PG
            print(
                f"target refresh >= {REFRESH_TARGET_PG:.0f}/s: {refresh['rps']:.0f}/s "
                f"{'ok' if ok else 'MISSED'}"
            )
            if not ok:
                misses.append(f"{result.backend}: refresh at {refresh['rps']:.0f}/s")
        print(
            f"refresh: {result.sessions_made} sessions made in {result.session_seconds:.1f}s, "
            f"{result.spent_tokens} tokens spent, {int(refresh['non_2xx'])} non-2xx, "
            f"{int(refresh['socket_errors'])} timeouts/socket errors, "
            f"{result.revoked_sessions} sessions revoked by reuse detection"
            + (", TOKENS EXHAUSTED (raise --sessions)" if result.tokens_exhausted else "")
        )
        if result.revoked_sessions:
            problems.append(f"{result.backend}: {result.revoked_sessions} sessions revoked")
        if result.tokens_exhausted:
            problems.append(f"{result.backend}: refresh tokens ran out; throughput understated")
        for path, durations in _server_5xx(result.server_errors).items():
            print(
                f"server answered {len(durations)} x 5xx on {path} "
                f"(after {min(durations):.0f}-{max(durations):.0f} ms)"
            )
        kept = f" (full log: {result.server_log})" if result.server_log else ""
        print(f"server log lines at WARNING or above: {len(result.server_errors)}{kept}")
        for line in result.server_errors[-5:]:
            print(f"  {line[:300]}")
        if result.server_errors:
            problems.append(
                f"{result.backend}: the server logged {len(result.server_errors)} warnings/errors"
            )
        login_ok = all(status == 200 for status in result.logins)
        login_ms = ", ".join(f"{ms:.0f}" for ms in result.login_ms)
        print(
            f"logins: {len(result.logins)} (statuses {result.logins}, {login_ms} ms each, "
            f"argon2 verify included); per-IP limit "
            f"{result.login_limit_per_minute}/min {'not hit' if login_ok else 'INTERFERED'}"
        )
        if not login_ok:
            problems.append(f"{result.backend}: a login failed: {result.logins}")
    print()
    print(f"total {elapsed:.0f}s; figures are noisy when other work shares the machine")
    if misses:
        print("targets missed: " + "; ".join(misses))
    return problems + (misses if args.strict else [])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--pg-server",
        default=os.environ.get("BENCH_PG_SERVER", DEFAULT_PG_SERVER),
        help="PostgreSQL server URL without database (a fresh one is made)",
    )
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--timeout", default="10s", help="wrk's per-request timeout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="DATABASE_POOL_SIZE per worker (PostgreSQL; overflow as much again)",
    )
    parser.add_argument(
        "--sessions", type=int, default=30000, help="pre-made sessions, one refresh token each"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(PROJECT_ROOT)  # the server reads `.env` from here; so do we (same SECRET_KEY)
    started = time.perf_counter()
    try:
        require_wrk()
        argon = argon2_ms()
        results = [bench_backend(b.strip(), args) for b in args.backends.split(",") if b.strip()]
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    problems = report(results, argon, args, time.perf_counter() - started)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "argon2_hash_ms": argon[0],
                    "argon2_verify_ms": argon[1],
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
