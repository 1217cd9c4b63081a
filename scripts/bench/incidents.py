#!/usr/bin/env python3
"""Benchmark of the nearby feed on PostgreSQL with N incidents (default 1,000,000).

Creates a fresh database on the local server, migrates it, loads N incidents with COPY, starts the
real server (uvicorn, 1 worker) and prints, in one run:
  - p50/p99 of the nearby query itself (`feed.nearby` as the route runs it, in this process);
  - p50/p99 of GET /api/v1/incidents/nearby over HTTP, with GET /healthz of the same server as
    the baseline, the two alternating so both meet the same noise (sequential requests:
    latency, not throughput), and what the pages carried;
  - CPU per request of the server process and of PostgreSQL's backends (steady on a shared
    machine where latencies are not), nearby and /healthz;
  - the load average before and after, since latency on a shared machine depends on it.
Points are drawn at random over Thái Nguyên city; radius 2 km (the default), first page of 20.

Data shape (stated with the figures): three years of reports over the city and the province;
by default 5% still on the road (verified or in progress), the rest new, resolved or rejected.
`--active 0.3` loads a much busier feed. By default 60% of the incidents on the road carry one to
three processed photos (one in eight a video), so each page signs media URLs as it would in use
(`--media 0` for none). Not a test: figures, not assertions.

Usage: python scripts/bench/incidents.py [--rows 1000000] [--active 0.05] [--media 0.6]
       [--queries 2000] [--server postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMeter, CpuUse  # noqa: E402

from app.incidents import geo  # noqa: E402
from app.incidents.categories import CATEGORIES  # noqa: E402

CITY = (21.50, 21.68, 105.74, 105.92)  # min lat, max lat, min lon, max lon
PROVINCE = (21.35, 22.60, 105.50, 106.20)
GRID = 0.01


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rows(n: int, active: float, on_road: list[uuid.UUID]):  # type: ignore[no-untyped-def]
    from uuid6 import uuid7

    now = datetime.now(UTC)
    categories = list(CATEGORIES)
    rest = ["new", "resolved", "resolved", "resolved", "resolved", "rejected_spam"]
    for i in range(n):
        box = CITY if i % 5 else PROVINCE  # four in five in the city
        lat = random.uniform(box[0], box[1])
        lon = random.uniform(box[2], box[3])
        if random.random() < active:
            status = random.choice(("verified", "in_progress"))
        else:
            status = random.choice(rest)
        created = now - timedelta(seconds=random.uniform(0, 3 * 365 * 86400))
        ident = uuid7()
        if status in ("verified", "in_progress"):
            on_road.append(ident)
        yield (
            ident,
            random.choice(categories),
            status,
            lat,
            lon,
            geo.cell_of(lat, lon, GRID),
            None,
            None,
            "TNG-PDP",
            None,
            None,
            False,
            "citizen",
            None,
            None,
            0,
            None,
            created,
            created,
            created,
            created,
            None,
            None,
        )


MEDIA_COPIES = {
    "media_objects": [
        "id",
        "owner_id",
        "purpose",
        "content_type",
        "size_bytes",
        "sha256",
        "original_filename",
        "storage_backend",
        "storage_key",
        "legal_hold",
        "created_at",
    ],
    "media_processing": [
        "media_id",
        "status",
        "kind",
        "width",
        "height",
        "duration_s",
        "fps",
        "frames",
        "faces",
        "plates",
        "error_code",
        "requested_at",
        "processed_at",
    ],
    "media_variants": [
        "id",
        "media_id",
        "name",
        "content_type",
        "storage_key",
        "width",
        "height",
        "size_bytes",
        "created_at",
    ],
    "incident_media": [
        "incident_id",
        "media_id",
        "position",
        "visibility",
        "added_by_id",
        "created_at",
    ],
}


def media_rows(on_road: list[uuid.UUID], share: float, owner: uuid.UUID) -> dict[str, list]:
    """Processed photos (and some videos) with their public versions, as the worker leaves them."""
    out: dict[str, list] = {table: [] for table in MEDIA_COPIES}
    now = datetime.now(UTC)
    for incident_id in on_road:
        if random.random() >= share:
            continue
        for position in range(random.randint(1, 3)):
            media_id = uuid.uuid4()
            video = random.random() < 1 / 8
            kind, ctype = ("video", "video/mp4") if video else ("photo", "image/jpeg")
            out["media_objects"].append(
                (
                    media_id,
                    owner,
                    "incident",
                    ctype,
                    2_000_000,
                    "0" * 64,
                    None,
                    "local",
                    f"bench/{media_id}",
                    False,
                    now,
                )
            )
            out["media_processing"].append(
                (
                    media_id,
                    "ready",
                    kind,
                    1920,
                    1080,
                    12.0 if video else None,
                    30.0 if video else None,
                    360 if video else None,
                    0,
                    0,
                    None,
                    now,
                    now,
                )
            )
            for name, width in (
                ("w320", 320),
                ("w1280", 1280),
                *((("video", 854),) if video else ()),
            ):
                out["media_variants"].append(
                    (
                        uuid.uuid4(),
                        media_id,
                        name,
                        ctype,
                        f"bench/{media_id}-{name}",
                        width,
                        width * 9 // 16,
                        100_000,
                        now,
                    )
                )
            out["incident_media"].append((incident_id, media_id, position, "public", owner, now))
    return out


COLUMNS = [
    "id",
    "category",
    "status",
    "lat",
    "lon",
    "cell",
    "address",
    "description",
    "ward_code",
    "reporter_id",
    "reporter_display_name",
    "anonymous",
    "source",
    "camera_id",
    "confidence",
    "me_too_count",
    "duplicate_of_id",
    "occurred_at",
    "created_at",
    "updated_at",
    "last_reported_at",
    "verified_at",
    "resolved_at",
]


async def load(dsn: str, n: int, active: float, media: float) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        batch: list[tuple] = []
        on_road: list[uuid.UUID] = []
        for row in rows(n, active, on_road):
            batch.append(row)
            if len(batch) == 50_000:
                await conn.copy_records_to_table("incidents", records=batch, columns=COLUMNS)
                batch.clear()
        if batch:
            await conn.copy_records_to_table("incidents", records=batch, columns=COLUMNS)
        owner = uuid.uuid4()
        await conn.execute(
            "INSERT INTO users (id, role, locale, identity_level, status, failed_logins, "
            "created_at, updated_at) VALUES ($1, 'citizen', 'vi', 1, 'active', 0, now(), now())",
            owner,
        )
        media_tables = media_rows(on_road, media, owner)
        for table, columns in MEDIA_COPIES.items():
            await conn.copy_records_to_table(table, records=media_tables[table], columns=columns)
        for table in ("incidents", *MEDIA_COPIES):  # as autovacuum would, in time
            await conn.execute(f"VACUUM ANALYZE {table}")
        print(
            f"loaded {n:,} incidents ({len(on_road):,} on the road, "
            f"{len(media_tables['incident_media']):,} public photos/videos on them) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def service_latencies(url: str, queries: int) -> list[float]:
    os.environ["DATABASE_URL"] = url
    from app.core.config import get_settings

    get_settings.cache_clear()
    from app.core.db import dispose_engine
    from app.incidents import feed

    timings = []
    for _ in range(queries):
        lat, lon = random.uniform(CITY[0], CITY[1]), random.uniform(CITY[2], CITY[3])
        started = time.perf_counter()
        await feed.nearby(None, lat=lat, lon=lon, radius_m=2000, limit=20, cursor=None)
        timings.append((time.perf_counter() - started) * 1000)
    await dispose_engine()
    return timings


async def http_latencies(base: str, queries: int) -> tuple[list[float], list[float], str]:
    nearby, bare = [], []
    items = media = 0
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(queries):
            lat, lon = random.uniform(CITY[0], CITY[1]), random.uniform(CITY[2], CITY[3])
            started = time.perf_counter()
            response = await client.get(
                "/api/v1/incidents/nearby", params={"lat": lat, "lon": lon, "radius_m": 2000}
            )
            nearby.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            page = response.json()["items"]
            items += len(page)
            media += sum(len(item["media"]) for item in page)
            started = time.perf_counter()
            await client.get("/healthz")
            bare.append((time.perf_counter() - started) * 1000)
    carried = (
        f"pages carried {items / queries:.1f} incidents and {media / queries:.1f} "
        "signed photos/videos on average"
    )
    return nearby, bare, carried


async def cpu_per_request(base: str, meter: CpuMeter, path: str, queries: int) -> CpuUse:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        with meter.measure() as used:
            for _ in range(queries):
                lat, lon = random.uniform(CITY[0], CITY[1]), random.uniform(CITY[2], CITY[3])
                response = await client.get(path, params={"lat": lat, "lon": lon})
                assert response.status_code == 200, response.text
    return CpuUse(used[0].server_s * 1000 / queries, (used[0].database_s or 0) * 1000 / queries)


def load_average() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<38} p50 {statistics.median(values):7.2f} ms   p99 "
        f"{percentile(values, 0.99):7.2f} ms   (n={len(values)})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--active", type=float, default=0.05)
    parser.add_argument("--media", type=float, default=0.6)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    random.seed(20261125)

    name = f"bench_incidents_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{args.server}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{args.server}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    server = None
    try:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "RUN_WORKER_IN_PROCESS": "false",
        }
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, check=True
        )
        await load(dsn, args.rows, args.active, args.media)
        port = free_port()
        server = subprocess.Popen(  # noqa: ASYNC220  (starting, not waiting)
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if (await asyncio.to_thread(httpx.get, f"{base}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        print(f"{args.rows:,} incidents, {args.active:.0%} on the road; radius 2 km, page of 20")
        print(f"before: {load_average()}")
        report("nearby query (feed.nearby, in-process)", await service_latencies(url, args.queries))
        nearby, bare, carried = await http_latencies(base, args.queries)
        report("GET /api/v1/incidents/nearby", nearby)
        report("GET /healthz (baseline)", bare)
        print(carried)
        meter = CpuMeter(server.pid, name)
        for path in ("/api/v1/incidents/nearby", "/healthz"):
            cpu = await cpu_per_request(base, meter, path, min(args.queries, 500))
            print(
                f"CPU per request {path:<26} server {cpu.server_s:5.2f} ms   "
                f"PostgreSQL {cpu.database_s:5.2f} ms"
            )
        print(f"after: {load_average()}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
