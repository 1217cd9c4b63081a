"""Camera alert intake benchmark (issue 7). Prints figures; it is not a test.

Starts the real server (`python -m app serve`, worker in-process unless --workers N starts N
separate `python -m app worker` processes) on a fresh database, then in one run:

- baseline: a bare endpoint of the same app (`GET /healthz`), same request count and concurrency;
- N alerts signed with the standardwebhooks package, each with a ~100 KB JPEG snapshot, from C
  concurrent senders: acknowledgement p50/p99 and alerts/s;
- the tail of the first wave (each sender's first request, all sent at once, so they queue
  behind one another) apart from the rest's; with --timeline, the acknowledgements per 100 ms;
- time until every alert is processed by the worker (blurred pictures, incident joined or opened
  with the picture as evidence, staff notified), and a verdict from the acknowledged alert ids
  (each stored and processed: none lost) and from effects that have no dedupe key of their own
  (one timeline entry and one evidence picture per alert: none processed twice); retries are
  counted apart, since a failed attempt commits nothing.

    python scripts/bench/camera.py [--alerts 1000] [--concurrency 50] [--warm-up 50]
                                   [--serve-workers 1] [--workers 0]
                                   [--database-url postgresql+asyncpg://postgres@127.0.0.1/x]

The warm-up alerts are sent and processed before the measured ones (a cold process's first
alerts wait for connections and compiled statements); they join the verdict's counts. The
production layout is `--serve-workers 2 --workers 2` on PostgreSQL: the separate workers run at
lower CPU priority (WORKER_NICENESS) and run WORKER_CONCURRENCY jobs at once each.

With --ack-cpu, no server is started: the app is driven in this process by direct ASGI calls
(no HTTP client, no worker), one signed alert at a time, and the CPU time (all threads of the
process, so aiosqlite's included) per acknowledgement is printed beside that of GET /healthz;
--profile FILE also writes the acknowledgements' cProfile (CPU clock). On a machine shared with
other work this is the steady figure to compare changes by.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
CAMERA = "BENCH-CAM-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def street_picture(target_kb: int) -> bytes:
    """A 1280x720 picture with shapes, gradients and sensor-like noise, near `target_kb`."""
    rng = np.random.default_rng(7)
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:] = np.linspace(60, 200, 1280, dtype=np.uint8)[None, :, None]
    for _ in range(80):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, 1280)), int(rng.integers(0, 720))
        cv2.rectangle(
            image,
            (x, y),
            (x + int(rng.integers(20, 300)), y + int(rng.integers(20, 200))),
            colour,
            -1,
        )
    image = cv2.GaussianBlur(image, (5, 5), 0)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    best = b""
    for quality in range(95, 20, -5):
        _, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        best = buffer.tobytes()
        if len(best) <= target_kb * 1024 * 1.1:
            break
    return best


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app", *cmd],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start(cmd: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *cmd], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def wait_up(base: str, procs: list[subprocess.Popen[bytes]]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a server process exited; see the log")
            try:
                if (await http.get(base + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


async def hammer(
    port: int,
    requests: list[bytes],
    concurrency: int,
    answers: list[dict] | None = None,
    timeline: list[tuple[float, float]] | None = None,
) -> tuple[list[float], float, dict]:
    """Send prepared HTTP/1.1 requests over `concurrency` keep-alive connections; latencies (ms),
    wall time, status counts. The JSON bodies of 202 answers are kept in `answers` when given,
    and (seconds since the first was sent, latency ms) of each request in `timeline`.

    A plain asyncio sender with the requests signed ahead: an httpx client with 50 requests in
    flight spent milliseconds of CPU per request in its own pool and was the bottleneck (it
    measured the bare /healthz at 258 req/s, which wrk drives at 13,000)."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    pending = iter(requests)
    first_sent = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in pending:
                started = time.perf_counter()
                failed = False
                try:
                    writer.write(raw)
                    await writer.drain()
                    head = await reader.readuntil(b"\r\n\r\n")
                    code: int | str = int(head[9:12])
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                    if answers is not None and code == 202:
                        answers.append(json.loads(body))
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    code, failed = type(exc).__name__, True  # counted, not fatal
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[code] = statuses.get(code, 0) + 1
                if timeline is not None:
                    timeline.append((started - first_sent, latencies[-1]))
                if failed:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, statuses


def waves(timeline: list[tuple[float, float]], concurrency: int) -> str:
    """The first `concurrency` requests leave together (each sender's first), so they queue
    behind one another; the later ones leave as answers come back. Their tails, apart."""
    ordered = [latency for _, latency in sorted(timeline)]
    first, rest = ordered[:concurrency], ordered[concurrency:]
    return (
        f"  the first {len(first)} (sent together): slowest {max(first):.1f} ms; "
        f"the other {len(rest)}: p50 {statistics.median(rest):.1f}, "
        f"p99 {percentile(rest, 99):.1f} ms"
    )


def per_100_ms(timeline: list[tuple[float, float]]) -> str:
    buckets: dict[int, list[float]] = {}
    for sent, latency in timeline:
        buckets.setdefault(int(sent * 10), []).append(latency)
    return "  sent in each 100 ms: " + " ".join(
        f"{n / 10:.1f}s:{len(b)}/{max(b):.0f}" for n, b in sorted(buckets.items())
    )


def http_request(
    method: str, path: str, port: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def stored_alert_ids(url: str) -> dict[str, str]:
    """Every stored alert: id -> status."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT id, status FROM camera_alerts"))
            return {str(uuid.UUID(str(r[0]))): r[1] for r in rows}
    finally:
        await engine.dispose()


async def counts(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    queries = {
        "alerts stored": "SELECT count(*) FROM camera_alerts",
        "alerts processed": "SELECT count(*) FROM camera_alerts WHERE status = 'processed'",
        "processing jobs": "SELECT count(*) FROM jobs WHERE kind = 'camera.process_alert'",
        "processing jobs done": "SELECT count(*) FROM jobs WHERE kind = 'camera.process_alert' "
        "AND status = 'done'",
        "processing attempts": "SELECT coalesce(sum(attempts), 0) FROM jobs "
        "WHERE kind = 'camera.process_alert'",
        # Effects without a dedupe key: an alert processed twice would leave two of these.
        "incident timeline entries from alerts": "SELECT count(*) FROM incident_events "
        "WHERE action IN ('camera_alert', 'reported')",
        "evidence pictures attached": "SELECT count(*) FROM incident_media",
        "alerts with evidence": "SELECT count(*) FROM camera_alerts "
        "WHERE evidence_media_id IS NOT NULL",
        "staff notifications (distinct events)": "SELECT count(DISTINCT dedupe_key) "
        "FROM notifications WHERE kind = 'camera.alert'",
        "ward staff": "SELECT count(*) FROM users WHERE status = 'active' AND ward_code = "
        "'TNG-PDP' AND role IN ('ward_staff', 'ward_admin')",
        "staff inbox rows (alerts x ward staff)": "SELECT count(*) FROM notifications "
        "WHERE kind = 'camera.alert'",
        # (The periodic offline check is always pending: not part of the alerts' work.)
        "jobs not finished": "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running') "
        "AND kind <> 'camera.offline_check'",
        "jobs dead": "SELECT count(*) FROM jobs WHERE status = 'dead'",
        "blurred thumbnails": "SELECT count(*) FROM camera_snapshots WHERE variant = 'thumbnail'",
    }
    try:
        async with engine.connect() as conn:
            return {
                name: (await conn.execute(sa.text(q))).scalar_one() for name, q in queries.items()
            }
    finally:
        await engine.dispose()


async def wait_processed(url: str, since: float, give_up_after: float) -> None:
    """Until every stored alert is processed: the whole chain, pictures, incident, then the
    staff push jobs."""
    while True:
        now_counts = await counts(url)
        if (
            now_counts["alerts processed"] >= now_counts["alerts stored"]
            and now_counts["jobs not finished"] == 0
        ):
            return
        if time.perf_counter() - since > give_up_after:
            print("gave up waiting for processing")
            return
        await asyncio.sleep(0.25)


def honest_verdict(
    sent: int, status: dict, answers: list[dict], stored: dict[str, str], final: dict[str, int]
) -> str:
    """None lost: every acknowledged alert id is stored and processed, and nothing else is stored
    (a request that failed in transport may or may not have been stored; it is shown apart).
    None processed twice: each processed alert left exactly one timeline entry, one evidence
    picture and one staff notice per ward staff member (these have no dedupe key of their own,
    so a second processing would show). Retries are shown apart: a failed attempt commits
    nothing, so a retry is no duplicate."""
    acked = [a["alert_id"] for a in answers]
    missing = [i for i in acked if i not in stored]
    unprocessed = [i for i in acked if stored.get(i) != "processed"]
    unknown_outcome = sum(v for k, v in status.items() if not isinstance(k, int))
    extra = len(stored) - len(set(acked))
    processed = final["alerts processed"]
    once = (
        final["incident timeline entries from alerts"] == processed
        and final["evidence pictures attached"] == final["alerts with evidence"] == processed
        and final["staff inbox rows (alerts x ward staff)"] == processed * final["ward staff"]
        and final["staff notifications (distinct events)"] == processed
    )
    lost_none = (
        not missing
        and not unprocessed
        and len(set(acked)) == len(acked)
        and 0 <= extra <= unknown_outcome
    )
    retries = final["processing attempts"] - final["processing jobs"]
    return "\n".join(
        [
            f"sent {sent}; acknowledged 202: {len(acked)} ({len(set(acked))} distinct alert ids); "
            f"transport errors (outcome unknown): {unknown_outcome}; other statuses: "
            f"{ {k: v for k, v in status.items() if k != 202 and isinstance(k, int)} }",
            f"none lost: {'yes' if lost_none else 'NO'} "
            f"(acknowledged but not stored: {len(missing)}, not processed: {len(unprocessed)}, "
            f"stored without an acknowledgement: {extra})",
            f"none processed twice: {'yes' if once else 'NO'} (per processed alert exactly one "
            f"timeline entry, one evidence picture, one inbox row per ward staff member)",
            f"retried attempts (a failed attempt commits nothing): {retries}; dead jobs: "
            f"{final['jobs dead']}",
        ]
    )


def signed_alert(signer: Webhook, snapshot: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    """An accident alert with a plate box and `snapshot`, signed now as the IOC signs it."""
    body = json.dumps(
        {
            "event_id": event_id,
            "camera_id": CAMERA,
            "type": "accident",
            "confidence": 0.9,
            "occurred_at": datetime.now(UTC).isoformat(),
            "boxes": [{"label": "plate", "x": 0.4, "y": 0.6, "width": 0.1, "height": 0.05}],
            "snapshot": snapshot,
        }
    )
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body),
    }
    return body.encode(), headers


async def ack_cpu(url: str, requests: int, snapshot_kb: int, profile: str | None) -> None:
    """CPU per acknowledgement, in process (see the module docstring)."""
    import cProfile

    os.environ.update(
        {
            "DATABASE_URL": url,
            "CAMERA_WEBHOOK_SECRETS": SECRET,
            "LOG_LEVEL": "WARNING",
            "RUN_WORKER_IN_PROCESS": "false",
        }
    )
    sys.path.insert(0, str(ROOT))
    from app.core.db import dispose_engine
    from app.main import create_app

    app = create_app(run_worker=False)
    signer = Webhook(SECRET)
    snapshot = base64.b64encode(street_picture(snapshot_kb)).decode()

    def scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }

    def signed(index: int) -> tuple[dict[str, Any], bytes]:
        body, headers = signed_alert(signer, snapshot, f"cpu-{index}")
        headers.update({"host": "127.0.0.1:8000", "content-length": str(len(body))})
        return scope("POST", "/internal/v1/camera-alerts", headers), body

    async def call(request: tuple[dict[str, Any], bytes]) -> int:
        sent = [False]
        status = [0]

        async def receive() -> dict[str, Any]:
            if sent[0]:
                await asyncio.sleep(3600)
            sent[0] = True
            return {"type": "http.request", "body": request[1], "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        await app(dict(request[0]), receive, send)
        return status[0]

    healthz = (scope("GET", "/healthz", {"host": "127.0.0.1:8000"}), b"")
    alerts = [signed(i) for i in range(requests + 50)]
    for request in alerts[:50]:  # warm caches (compiled statements, pools)
        assert await call(request) == 202
    for _ in range(50):
        await call(healthz)
    cpu0 = time.process_time()
    for _ in range(requests):
        assert await call(healthz) == 200
    health_cpu = (time.process_time() - cpu0) / requests
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for request in alerts[50:]:
        status = await call(request)
        assert status == 202, status
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    ack_cpu_s = (time.process_time() - cpu0) / requests
    ack_wall = (time.perf_counter() - wall0) / requests
    await dispose_engine()
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(
        f"{backend}, in process, one at a time, {requests} requests: "
        f"GET /healthz {health_cpu * 1000:.2f} ms CPU; signed alert -> 202 "
        f"{ack_cpu_s * 1000:.2f} ms CPU ({ack_wall * 1000:.2f} ms wall)"
        f"{' (under cProfile)' if profiler else ''}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--snapshot-kb", type=int, default=100)
    parser.add_argument(
        "--warm-up", type=int, default=50, help="alerts sent and processed before the measured ones"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="separate worker processes (0: the worker runs inside serve)",
    )
    parser.add_argument(
        "--serve-workers", type=int, default=1, help="server processes (`serve --workers N`)"
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--ack-cpu",
        action="store_true",
        help="CPU per acknowledgement in process (no server, no worker)",
    )
    parser.add_argument("--profile", help="with --ack-cpu: write a cProfile of the acks here")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="also print the acknowledgements per 100 ms: count/slowest ms",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-camera-"))
    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CAMERA_WEBHOOK_SECRETS": SECRET,
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "PUSH_BACKEND": "file",
        "PUSH_FILE_PATH": str(tmp / "push.jsonl"),
        "SMS_FILE_PATH": str(tmp / "sms.jsonl"),
        "WORKER_POLL_INTERVAL_SECONDS": "0.05",
        "RUN_WORKER_IN_PROCESS": "false" if args.workers else "true",
        "JOB_LEASE_SECONDS": "120",
    }
    run(["migrate"], env)
    run(["seed-demo"], env)  # wards and one staff member per ward (who get the pushes)
    run(
        [
            "cameras",
            "create",
            "--code",
            CAMERA,
            "--name",
            "Bench crossing",
            "--lat",
            "21.5942",
            "--lon",
            "105.8482",
            "--ward",
            "TNG-PDP",
        ],
        env,
    )
    if args.ack_cpu:
        await ack_cpu(url, args.alerts, args.snapshot_kb, args.profile)
        return

    log = (tmp / "server.log").open("w")
    procs = [start(["serve", "--port", str(port), "--workers", str(args.serve_workers)], env, log)]
    # Workers need few connections: keep the shared PostgreSQL server's slots for the API.
    worker_env = {**env, "DATABASE_POOL_SIZE": "2"}
    procs += [start(["worker"], worker_env, log) for _ in range(args.workers)]
    try:
        await wait_up(base, procs)
        picture = street_picture(args.snapshot_kb)
        snapshot = base64.b64encode(picture).decode()
        signer = Webhook(SECRET)

        def alert(index: int) -> bytes:
            body, headers = signed_alert(signer, snapshot, f"bench-{index}")
            return http_request("POST", "/internal/v1/camera-alerts", port, headers, body)

        bare = [http_request("GET", "/healthz", port)] * args.alerts
        await hammer(port, bare[:100], 10)  # warm-up
        base_lat, base_wall, base_status = await hammer(port, bare, args.concurrency)
        # A server that has been running: every process's connections, compiled statements and
        # picture tools ready (the first alerts of a cold process took 200+ ms). Their answers
        # join the verdict's; their processing is over before the measured burst starts.
        answers: list[dict] = []
        warm = [alert(index) for index in range(args.alerts, args.alerts + args.warm_up)]
        _, _, warm_status = await hammer(port, warm, args.concurrency, answers)
        if warm_status != {202: len(warm)}:
            raise SystemExit(f"warm-up alerts were not all acknowledged: {warm_status}")
        await wait_processed(url, time.perf_counter(), args.timeout)
        alerts = [alert(index) for index in range(args.alerts)]  # signed just before sending
        sent_at = time.perf_counter()
        timeline: list[tuple[float, float]] = []
        lat, wall, status = await hammer(port, alerts, args.concurrency, answers, timeline)
        await wait_processed(url, sent_at, args.timeout)
        processed_after = time.perf_counter() - sent_at
        final = await counts(url)
        stored = await stored_alert_ids(url)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        log.close()

    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    worker = f"{args.workers} separate worker process(es)" if args.workers else "in-process worker"
    serving = f"{args.serve_workers} server process(es)"
    print(
        f"\nCamera alert intake on {backend}, {serving}, {worker}; {args.alerts} requests "
        f"from {args.concurrency} concurrent senders (after {args.warm_up} warm-up alerts, "
        f"processed before); snapshot {len(picture) / 1024:.0f} KB"
    )
    print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9}  statuses")
    print(
        f"{'baseline GET /healthz':34} {statistics.median(base_lat):8.1f} "
        f"{percentile(base_lat, 99):8.1f} {args.alerts / base_wall:9.0f}  {base_status}"
    )
    print(
        f"{'signed alert -> 202':34} {statistics.median(lat):8.1f} "
        f"{percentile(lat, 99):8.1f} {args.alerts / wall:9.0f}  {status}"
    )
    print(
        f"ack p99 / baseline p99: {percentile(lat, 99) / percentile(base_lat, 99):.1f}x; "
        f"target p99 < 100 ms: {'met' if percentile(lat, 99) < 100 else 'NOT met'}"
    )
    if len(timeline) > args.concurrency:
        print(waves(timeline, args.concurrency))
    if args.timeline:
        print(per_100_ms(timeline))
    print(
        f"all processed {processed_after:.1f} s after the first alert was sent "
        f"(target 60 s: {'met' if processed_after <= 60 else 'NOT met'}); "
        f"{final['alerts processed'] / processed_after:.1f} alerts/s through the worker"
    )
    for name, value in final.items():
        print(f"  {name:40} {value}")
    sent = {k: status.get(k, 0) + warm_status.get(k, 0) for k in {*status, *warm_status}}
    print(honest_verdict(args.alerts + args.warm_up, sent, answers, stored, final))
    print(f"logs: {tmp}")


if __name__ == "__main__":
    asyncio.run(main())
