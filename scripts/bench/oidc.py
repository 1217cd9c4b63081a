"""Benchmark of the OpenID Connect provider: client_credentials (JWT access tokens), refresh_token
rotation and introspection, against a bare endpoint of the same app as the baseline.

Starts the real server (`python -m app serve --workers 2`) on a fresh PostgreSQL database (or the
DATABASE_URL given with --database-url), prepares a client, a citizen and refresh-token chains,
then runs `wrk -t2 -c64 -d10s` against each endpoint and prints requests/s, p50 and p99, and the
CPU milliseconds per request used by the server's processes and by the database's backends (on a
machine shared with other work, CPU per request is steadier than requests per second).

    .venv/bin/python scripts/bench/oidc.py [--duration 10s] [--connections 64]

Not a test: figures depend on the machine (2 shared cores here).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMeter

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
REDIRECT = "https://bench.example.vn/cb"
PHONE, PASSWORD = "0912345678", "mot-mat-khau-dai-2026"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [PY, "-m", "app", *args, "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


async def make_pg_database(server_url: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(server_url)
    name = f"bench_oidc_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(db_url: str, server_url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(
            sa.text(f'DROP DATABASE IF EXISTS "{make_url(db_url).database}" WITH (FORCE)')
        )
    await admin.dispose()


def make_url_database(db_url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(db_url).database)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def hidden(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


async def refresh_tokens(
    base: str, client_id: str, secret: str, count: int, http: httpx.AsyncClient | None = None
) -> list[str]:
    """Sign in once through the pages, consent once, then code flows with prompt=none."""
    if http is None:
        async with httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=30) as own:
            return await refresh_tokens(base, client_id, secret, count, own)
    tokens: list[str] = []
    for i in range(count):
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile offline_access",
            "state": str(i),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        response = await http.get("/oauth/authorize?" + urlencode(params))
        while not response.headers["location"].startswith(REDIRECT):
            location = response.headers["location"]
            page = await http.get(location)
            if page.status_code in (302, 303):
                response = page
                continue
            path = urlsplit(location).path
            extra = (
                {"phone": PHONE, "password": PASSWORD}
                if path == "/oauth/login"
                else {"decision": "allow"}
            )
            response = await http.post(path, data={**hidden(page.text), **extra})
        code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
        token = await http.post(
            "/oauth/token",
            auth=(client_id, secret),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        )
        tokens.append(token.json()["refresh_token"])
    return tokens


LUA_FIXED = """
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = %(auth)s
"""

# Each thread keeps a queue of live refresh tokens: a response's successor replaces the token it
# spent, so every request presents an unused token (no reuse, no family revocation).
LUA_REFRESH = """
local queue = {}
local auth = %(auth)s
function setup(thread)
  thread:set("mine", table.remove(pool))
end
function init(args)
  for token in string.gmatch(mine, "[^,]+") do table.insert(queue, token) end
end
function request()
  local token = table.remove(queue, 1)
  return wrk.format("POST", "/oauth/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth},
    "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, headers, body)
  local successor = string.match(body, '"refresh_token": "([^"]+)"')
  if successor then table.insert(queue, successor) end
end
"""


def wrk(
    url: str, script: str | None, threads: int, connections: int, duration: str
) -> dict[str, Any]:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        if script:
            lua.write(script)
    if script:
        args += ["-s", lua.name]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pg-server",
        default=os.environ.get(
            "BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--database-url", help="use this database instead of a fresh one")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--only", help="comma-separated case names: baseline,cc,introspection,refresh"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed (apt-get install wrk)")
        return 2
    fresh = args.database_url is None
    db_url = args.database_url or await make_pg_database(args.pg_server)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "PUBLIC_BASE_URL": base,
        "LOG_LEVEL": "WARNING",
        "RUN_WORKER_IN_PROCESS": "false",
        "ENVIRONMENT": "development",
        "LOGIN_PER_IP_PER_MINUTE": "100000",
    }
    server = None
    try:
        run(env, "migrate")
        run(
            env,
            "users",
            "create",
            "--phone",
            PHONE,
            "--password",
            PASSWORD,
            "--name",
            "Người dùng thử",
            "--role",
            "citizen",
        )
        client = run(
            env,
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
        )
        client_id, secret = client["client_id"], client["client_secret"]
        # Server logs (e.g. ClientDisconnect when wrk stops mid-request) go to a file.
        log = open(tempfile.gettempdir() + "/bench-oidc-server.log", "w")  # noqa: SIM115, ASYNC230
        server = subprocess.Popen(  # noqa: ASYNC220
            [
                PY,
                "-m",
                "app",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            cc = (
                await http.post(
                    "/oauth/token",
                    auth=(client_id, secret),
                    data={"grant_type": "client_credentials"},
                )
            ).json()
        per_thread = args.connections // args.threads + 4
        chains = await refresh_tokens(base, client_id, secret, per_thread * args.threads)
        basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        pools = [
            ",".join(chains[i * per_thread : (i + 1) * per_thread]) for i in range(args.threads)
        ]
        refresh_script = (
            "pool = "
            + json.dumps(pools).replace("[", "{").replace("]", "}")
            + "\n"
            + LUA_REFRESH % {"auth": json.dumps(basic)}
        )

        def fixed(body: str) -> str:
            return LUA_FIXED % {"body": json.dumps(body), "auth": json.dumps(basic)}

        cases = [
            ("baseline", "baseline GET /healthz", base + "/healthz", None),
            ("readyz", "GET /readyz (1 DB query)", base + "/readyz", None),
            (
                "cc",
                "client_credentials (JWT)",
                base + "/oauth/token",
                fixed("grant_type=client_credentials"),
            ),
            (
                "introspection",
                "introspection",
                base + "/oauth/introspect",
                fixed("token=" + cc["access_token"]),
            ),
            ("refresh", "refresh_token rotation", base + "/oauth/token", refresh_script),
        ]
        if args.only:
            wanted = set(args.only.split(","))
            cases = [case for case in cases if case[0] in wanted or case[0] == "baseline"]
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}, "
            f"{args.workers} uvicorn workers, PostgreSQL, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at start"
        )
        print(
            f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs base':>9}"
            f"{'non-2xx':>9}{'timeouts':>10}{'app CPU ms/req':>16}{'db CPU ms/req':>15}"
        )
        meter = CpuMeter(server.pid, make_url_database(db_url))
        baseline = None
        for _key, name, url, script in cases:
            await asyncio.sleep(1)
            with meter.measure() as cpu:
                result = await asyncio.to_thread(
                    wrk, url, script, args.threads, args.connections, args.duration
                )
            baseline = baseline or result["rps"]
            requests = max(result["requests"], 1)
            print(
                f"{name:<28}{result['rps']:>10.0f}{result['p50']:>10.1f}{result['p99']:>10.1f}"
                f"{result['rps'] / baseline:>8.0%}{result['non_2xx']:>9}"
                f"{result['timeouts']:>10}{cpu[0].server_s * 1000 / requests:>16.3f}"
                f"{(cpu[0].database_s or 0.0) * 1000 / requests:>15.3f}"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if fresh:
            await drop_pg_database(db_url, args.pg_server)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
