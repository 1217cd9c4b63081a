"""CPU per request of the OpenID Connect provider's hot endpoints, measured in process.

On a shared machine requests/s swing with the other work; CPU time per request does not (much).
This drives the ASGI app directly (httpx's ASGI transport, one request at a time) on a fresh
PostgreSQL database and prints, per case, the process CPU and the database backends' CPU per
request and the SQL statements per request (those of the session and `Direct` ones; a
data-changing CTE counts as one `WITH`). The client side (httpx) runs in the same process:
compare with the `GET /healthz` line, which is mostly that.

    .venv/bin/python scripts/bench/oidc_inprocess.py [--requests 1000] [--profile DIR]

With --profile, each case's cProfile (CPU clock) is written to DIR/<case>.pstats. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_seconds, fresh_database, migrate, pg_backend_pids, run_cli
from oidc import PASSWORD, PHONE, REDIRECT, refresh_tokens

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:9"
Call = Callable[[], Awaitable[httpx.Response]]


async def measure(
    name: str, calls: int, call: Call, database: str, profile_dir: Path | None
) -> None:
    import sqlalchemy as sa

    from app.core.db import Direct, get_engine

    for _ in range(20):
        await call()  # warm caches
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split()[0])

    sa.event.listen(get_engine().sync_engine, "before_cursor_execute", count)
    # `Direct` statements go straight to the driver, past SQLAlchemy's events: count them too.
    run_direct = Direct._run

    async def counted(dialect: str, sql: str, args: list[Any]) -> Any:
        statements.append(sql.split()[0])
        return await run_direct(dialect, sql, args)

    Direct._run = staticmethod(counted)  # type: ignore[method-assign]
    backends = {pid: cpu_seconds([pid]) for pid in pg_backend_pids(database)}
    profiler = cProfile.Profile(time.process_time) if profile_dir else None
    cpu0 = time.process_time()
    if profiler:
        profiler.enable()
    for _ in range(calls):
        answer = await call()
        assert answer.status_code == 200, (name, answer.status_code, answer.text)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu0
    sa.event.remove(get_engine().sync_engine, "before_cursor_execute", count)
    Direct._run = staticmethod(run_direct)  # type: ignore[method-assign]
    db_cpu = sum(
        used - backends.get(pid, 0.0)
        for pid, used in ((p, cpu_seconds([p])) for p in pg_backend_pids(database))
    )
    if profiler and profile_dir:
        profiler.dump_stats(profile_dir / f"{name.replace(' ', '_').replace('/', '')}.pstats")
    kinds = dict(Counter(statements))
    print(
        f"{name:<24}{cpu / calls * 1000:>10.3f}{db_cpu / calls * 1000:>10.3f}"
        f"{len(statements) / calls:>8.1f}  {kinds}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", type=Path, help="write each case's cProfile here")
    parser.add_argument(
        "--only",
        help="comma-separated cases: client_credentials,"
        "introspection,refresh_token (GET /healthz always runs)",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with fresh_database("postgresql", prefix="bench_oidc_cpu") as db:
        env = {
            "DATABASE_URL": db.url,
            "PUBLIC_BASE_URL": BASE,
            "LOG_LEVEL": "WARNING",
            "RUN_WORKER_IN_PROCESS": "false",
            "ENVIRONMENT": "development",
            "LOGIN_PER_IP_PER_MINUTE": "100000",
        }
        os.environ.update(env)
        full_env = {**os.environ, **env}
        migrate(full_env)
        run_cli(
            [
                "users",
                "create",
                "--phone",
                PHONE,
                "--password",
                PASSWORD,
                "--name",
                "Thử",
                "--role",
                "citizen",
            ],
            full_env,
        )
        client = run_cli(
            [
                "clients",
                "create",
                "--name",
                "Bench",
                "--redirect-uri",
                REDIRECT,
                "--type",
                "confidential",
                "--auth-method",
                "client_secret_basic",
                "--scope",
                "openid profile offline_access",
            ],
            full_env,
        )
        auth = (client["client_id"], client["client_secret"])
        asyncio.run(run_cases(args, db.name, auth))
    return 0


async def run_cases(args: argparse.Namespace, database: str, auth: tuple[str, str]) -> None:
    from asgi_lifespan import LifespanManager

    from app.core.db import dispose_engine
    from app.main import create_app

    app = create_app(run_worker=False)
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=BASE, follow_redirects=False
            ) as http,
        ):
            issued = await http.post(
                "/oauth/token", auth=auth, data={"grant_type": "client_credentials"}
            )
            access = issued.json()["access_token"]
            chain = {"token": (await refresh_tokens(BASE, *auth, 1, http))[0]}

            async def refresh() -> httpx.Response:
                answer = await http.post(
                    "/oauth/token",
                    auth=auth,
                    data={"grant_type": "refresh_token", "refresh_token": chain["token"]},
                )
                if answer.status_code == 200:
                    chain["token"] = answer.json()["refresh_token"]
                return answer

            print(
                f"{args.requests} requests each, one at a time, PostgreSQL, load average "
                f"{os.getloadavg()[0]:.1f}"
            )
            print(f"{'case':<24}{'CPU ms':>10}{'db CPU ms':>10}{'SQL':>8}  statements")
            cases: list[tuple[str, Call]] = [
                ("GET /healthz", lambda: http.get("/healthz")),
                (
                    "client_credentials",
                    lambda: http.post(
                        "/oauth/token", auth=auth, data={"grant_type": "client_credentials"}
                    ),
                ),
                (
                    "introspection",
                    lambda: http.post("/oauth/introspect", auth=auth, data={"token": access}),
                ),
                ("refresh_token", refresh),
            ]
            wanted = set(args.only.split(",")) if args.only else None
            for name, call in cases:
                if wanted is not None and name != "GET /healthz" and name not in wanted:
                    continue
                await measure(name, args.requests, call, database, args.profile)
    finally:
        await dispose_engine()


if __name__ == "__main__":
    sys.exit(main())
