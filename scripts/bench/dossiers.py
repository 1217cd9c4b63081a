#!/usr/bin/env python3
"""Benchmark of public services on PostgreSQL, against the real server (uvicorn, 1 worker).

Prints, in one run, with a bare endpoint (/healthz) of the same server as the baseline:
  - dossier submissions per second (POST /api/v1/dossiers, each with its own Idempotency-Key,
    round robin over 5 wards: submissions to one ward queue on its daily counter row);
  - p50/p99 and requests/s of the staff queue with N dossiers in the table (default 1,000,000):
    the first page of a ward's overdue dossiers (target p99 < 50 ms), and the plain first page.

Load is generated with wrk on the same 2-core machine. Not a test: figures, not assertions.
Usage: python scripts/bench/dossiers.py [--rows 1000000] [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench._common import CpuMeter, CpuUse  # noqa: E402
from tests.support.dossiers import birth_body, pdf_bytes  # noqa: E402

CITIZEN = ("0912345678", "mot-mat-khau-dai-2026")
STAFF = ("0981000001", "ThaiNguyen@2026")  # seed-demo: ward TNG-PDP
WARDS = ["TNG-PDP", "TNG-GS", "TNG-QT", "TNG-TL", "TNG-BK"]

# Tally answers by status, so errors can be told apart (wrk only counts them).
STATUS_LUA = """
n4xx, n5xx = 0, 0
local tallies = {}
function setup(thread)
  table.insert(tallies, thread)
end
function response(status, headers, body)
  if status >= 500 then n5xx = n5xx + 1 elseif status >= 400 then n4xx = n4xx + 1 end
end
function done(summary, latency, requests)
  local a, b = 0, 0
  for _, thread in ipairs(tallies) do
    a = a + thread:get("n4xx")
    b = b + thread:get("n5xx")
  end
  io.write(string.format("statuses: 4xx=%d 5xx=%d\\n", a, b))
end
"""

SUBMIT_LUA = """
local counter = 0
local thread_id = 0
local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
  table.insert(tallies, thread)
end
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", run_id, thread_id, counter)
  -- Round robin over the wards: each ward has its own daily counter row.
  return wrk.format("POST", "/api/v1/dossiers", nil, bodies[counter % #bodies + 1])
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    headers: dict[str, str],
    script: Path | None = None,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """One wrk run; with a meter, also the CPU that the server and the database's backends
    spent per request (steadier than latency on a shared machine)."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    cpu: list[CpuUse] = []
    with meter.measure() if meter else contextlib.nullcontext(cpu) as cpu:
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses = re.search(r"^statuses:(.*)$", out, re.M)

    def pct(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    per_request = {
        "server_cpu_ms": cpu[0].server_s * 1000 / max(total, 1) if cpu else None,
        "db_cpu_ms": (cpu[0].database_s or 0) * 1000 / max(total, 1) if cpu else None,
    }
    return {
        "rps": rps,
        "requests": total,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        **per_request,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "statuses": statuses.group(1).strip() if statuses else "",
    }


FILL_SQL = """
INSERT INTO dossiers (
  id, code, procedure_code, citizen_id, agency_code, status, form, period, submitted_at,
  received_at, due_at, legal_due_at, paused_workdays, supplement_requests, supplement_documents,
  extensions, outcome_reasons, updated_at, applicant_phone_last4)
SELECT
  gen_random_uuid(),
  agency || '-BENCH-' || lpad(g::text, 7, '0'),
  '1.001193', :citizen, agency,
  CASE WHEN r < 0.60 THEN 'returned' WHEN r < 0.70 THEN 'received'
       WHEN r < 0.80 THEN 'in_progress' WHEN r < 0.85 THEN 'supplement_requested'
       WHEN r < 0.90 THEN 'submitted' WHEN r < 0.95 THEN 'rejected' ELSE 'withdrawn' END,
  '{}'::json, to_char(submitted, 'YYYY-MM'), submitted,
  submitted + interval '1 hour', submitted + interval '3 days', submitted + interval '3 days',
  0, 0, '[]'::json, 0, '[]'::json, submitted, '5678'
FROM (
  SELECT g, random() AS r,
         (ARRAY['TNG-PDP','TNG-GS','TNG-QT','TNG-TL','TNG-BK','TNG'])[1 + (g % 6)] AS agency,
         now() - (random() * interval '365 days') AS submitted
  FROM generate_series(1, :rows) AS g
) AS s
"""


async def fill(url: str, rows: int, citizen_id: str) -> float:
    engine = create_async_engine(url)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(sa.text(FILL_SQL), {"rows": rows, "citizen": uuid.UUID(citizen_id)})
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE dossiers"))
    await engine.dispose()
    return time.perf_counter() - started


async def admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(statement))
    await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2

    load_start = os.getloadavg()[0]
    name = f"bench_dossiers_{os.getpid()}"
    server_url = sa.engine.make_url(args.pg)
    db_url = server_url.set(database=name).render_as_string(hide_password=False)
    asyncio.run(admin(args.pg, f'CREATE DATABASE "{name}"'))
    tmp = Path(tempfile.mkdtemp(prefix="bench-dossiers-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "MEDIA_DIR": str(tmp / "media"),
        "SMS_FILE_PATH": str(tmp / "sms.jsonl"),
        "ENVIRONMENT": "development",
        "RUN_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_SIZE": "20",
        # The bench re-reads the same status over and over: do not rate limit it.
        "DOSSIER_PUBLIC_LOOKUP_PER_IP_PER_MINUTE": "100000000",
    }
    py = [sys.executable, "-m", "app"]
    server = None
    try:
        for command in (
            ["migrate"],
            ["seed-demo"],
            [
                "users",
                "create",
                "--phone",
                CITIZEN[0],
                "--password",
                CITIZEN[1],
                "--name",
                "Trần Thị Mai",
                "--role",
                "citizen",
                "--format",
                "json",
            ],
        ):
            done = subprocess.run(
                [*py, *command], env=env, cwd=ROOT, capture_output=True, text=True, check=True
            )
        citizen_id = json.loads(done.stdout)["id"]
        server = subprocess.Popen(
            [*py, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        # After start-up: the server seeds the procedure catalogue the rows refer to.
        print(f"filling {args.rows:,} dossiers ...", flush=True)
        fill_seconds = asyncio.run(fill(db_url, args.rows, citizen_id))
        print(f"  filled in {fill_seconds:.1f} s", flush=True)
        with httpx.Client(base_url=base, timeout=30) as http:

            def token(phone: str, password: str) -> str:
                response = http.post(
                    "/api/v1/auth/login", json={"phone": phone, "password": password}
                )
                response.raise_for_status()
                return response.json()["access_token"]

            citizen = {"Authorization": f"Bearer {token(*CITIZEN)}"}
            staff = {"Authorization": f"Bearer {token(*STAFF)}"}
            scan = http.post(
                "/api/v1/media",
                headers=citizen,
                files={"file": ("scan.pdf", pdf_bytes(), "application/pdf")},
            )
            scan.raise_for_status()
            bodies = [
                json.dumps(birth_body(scan.json()["id"], ward=ward), ensure_ascii=False)
                for ward in WARDS
            ]
            http.get(
                "/api/v1/staff/dossiers", params={"overdue": "true"}, headers=staff
            ).raise_for_status()

        script = tmp / "submit.lua"
        script.write_text(
            f"run_id = {json.dumps(uuid.uuid4().hex[:8])}\n"
            "bodies = {"
            + ", ".join(json.dumps(b, ensure_ascii=False) for b in bodies)
            + "}\n"
            + STATUS_LUA.replace(
                "function setup(thread)\n  table.insert(tallies, thread)\nend\n", ""
            )
            + SUBMIT_LUA,
            encoding="utf-8",
        )
        tally = tmp / "tally.lua"
        tally.write_text(STATUS_LUA, encoding="utf-8")
        common = {
            "duration": args.duration,
            "connections": args.connections,
            "script": tally,
            "meter": CpuMeter(server.pid, name),
        }
        results = {
            "baseline GET /healthz": wrk(f"{base}/healthz", headers={}, **common),
            "authenticated GET /api/v1/me": wrk(f"{base}/api/v1/me", headers=citizen, **common),
            "staff queue: ward's overdue, first page": wrk(
                f"{base}/api/v1/staff/dossiers?overdue=true&limit=20", headers=staff, **common
            ),
            "staff queue: ward's newest, first page": wrk(
                f"{base}/api/v1/staff/dossiers?limit=20", headers=staff, **common
            ),
            "staff queue: ward's received, first page": wrk(
                f"{base}/api/v1/staff/dossiers?status=received&limit=20", headers=staff, **common
            ),
            # Light load: latency of one request rather than of a queue of 32.
            "authenticated GET /api/v1/me (c=4)": wrk(
                f"{base}/api/v1/me", headers=citizen, **{**common, "connections": 4}
            ),
            "staff queue: overdue, first page (c=4)": wrk(
                f"{base}/api/v1/staff/dossiers?overdue=true&limit=20",
                headers=staff,
                **{**common, "connections": 4},
            ),
            # Last: its burst of writes leaves work behind (WAL, autovacuum of the grown
            # table) that would otherwise land in the next row's latencies.
            "POST /api/v1/dossiers (5 wards)": wrk(
                base,
                headers={**citizen, "Content-Type": "application/json"},
                **{**common, "script": script},
            ),
        }
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
        asyncio.run(admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)

    baseline = results["baseline GET /healthz"]["rps"]
    load = os.getloadavg()[0]
    print(
        f"\nPostgreSQL, {args.rows:,} dossiers, wrk -t2 -c{args.connections} "
        f"-d{args.duration}s, 1 uvicorn worker, 2 cores shared with wrk; "
        f"load average at the end {load:.1f}"
    )
    heading = f"endpoint (c={args.connections} unless said)"
    print(
        f"{heading:<44}{'req/s':>10}{'vs base':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'srv cpu':>9}{'db cpu':>8}{'errors':>8}   (cpu: ms per request)"
    )
    for label, r in results.items():
        print(
            f"{label:<44}{r['rps']:>10.0f}{r['rps'] / baseline:>8.0%} {r['p50_ms']:>8.2f}"
            f"{r['p99_ms']:>9.2f}{r['server_cpu_ms']:>9.2f}{r['db_cpu_ms']:>8.2f}"
            f"{r['errors']:>8}   {r['statuses']}"
        )
    for label in (
        "staff queue: ward's overdue, first page",
        "staff queue: overdue, first page (c=4)",
    ):
        p99 = results[label]["p99_ms"]
        print(f"{label}: p99 {p99:.1f} ms (target < 50 ms: {'met' if p99 < 50 else 'NOT met'})")
    # One worker serves the c connections one at a time: a request waits for the c-1 ahead of it,
    # so c x (server CPU per request) is a floor for latency however fast the database is.
    for label, c in (
        ("staff queue: ward's overdue, first page", args.connections),
        ("staff queue: overdue, first page (c=4)", 4),
    ):
        cpu = results[label]["server_cpu_ms"]
        print(
            f"  {label}: {cpu:.2f} ms server CPU per request, so at c={c} about "
            f"{c * cpu:.0f} ms per request queued on one worker"
        )
    submissions = results["POST /api/v1/dossiers (5 wards)"]["rps"]
    print(
        f"submissions/s: {submissions:.0f} (bare endpoint /healthz in the same run: "
        f"{baseline:.0f} req/s; submissions at {submissions / baseline:.0%} of it)"
    )
    print(f"load average at the start {load_start:.1f}, at the end {load:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
