#!/usr/bin/env python3
"""Benchmark of media uploads and processing. Prints, in one run:
  - a plain disk write of SIZE (dd, 1 MiB blocks, fdatasync) as the baseline, in MB/s;
  - a tus upload of SIZE to the real server (uvicorn, 1 worker, SQLite, media on the same disk),
    PATCHes of 64 MiB streamed from a generator, in MB/s and as a share of the baseline;
  - the server's peak memory growth during the upload (VmHWM after minus VmRSS before, the peak
    reset just before the upload, so the start-up peak does not count);
  - per-photo processing ms (decode with orientation, detection on a 640 px copy, blur, two
    thumbnails) of a 1920x1080 JPEG, in this process.
The upload is declared one byte longer than SIZE so it stays an upload (no final judging of the
zero bytes); it is terminated afterwards. Not a test: figures, not assertions.

Usage: python scripts/bench/media.py [--size-mib 1024] [--photos 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
PATCH_BYTES = 64 * MIB
PHONE, PASSWORD = "0912555000", "mot-mat-khau-dai-2026"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dd_baseline(folder: Path, size_mib: int) -> float:
    target = folder / "dd.bin"
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size_mib}", "conv=fdatasync"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    target.unlink()
    return size_mib * MIB / elapsed / 1e6


def memory_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (Linux: "5" to /proc/PID/clear_refs; needs owning it)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def body(total: int):  # type: ignore[no-untyped-def]
    block = b"\0" * MIB
    for _ in range(total // MIB):
        yield block


def tus_upload(base: str, headers: dict[str, str], size: int) -> float:
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=base, timeout=600) as client:
        created = client.post("/api/v1/uploads/", headers={**tus, "Upload-Length": str(size + 1)})
        created.raise_for_status()
        path = httpx.URL(created.headers["location"]).path
        started = time.perf_counter()
        offset = 0
        while offset < size:
            length = min(PATCH_BYTES, size - offset)
            response = client.patch(
                path,
                content=body(length),
                headers={
                    **tus,
                    "Upload-Offset": str(offset),
                    "Content-Length": str(length),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            response.raise_for_status()
            offset = int(response.headers["upload-offset"])
        elapsed = time.perf_counter() - started
        client.delete(path, headers=tus)
    return size / elapsed / 1e6


def photo_ms(count: int) -> float:
    import cv2

    from app.media import processing
    from tests.support import media_samples as samples

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "photo.jpg"
        source.write_bytes(samples.encode(cv2.resize(samples.scene(), (1920, 1080)), ".jpg"))
        processing.process(source, "image/jpeg", "photo", Path(tmp) / "warm")
        timings = []
        for i in range(count):
            started = time.perf_counter()
            processing.process(source, "image/jpeg", "photo", Path(tmp) / f"out{i}")
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--photos", type=int, default=20)
    args = parser.parse_args()
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory(dir=ROOT / "var" if (ROOT / "var").exists() else None) as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}",
            "MEDIA_DIR": str(folder / "media"),
            "LOG_LEVEL": "WARNING",
            "RUN_WORKER_IN_PROCESS": "false",
            "MEDIA_TUS_QUOTA_BYTES": str(4 * size),
            "MEDIA_TUS_MAX_SIZE_BYTES": str(2 * size),
        }
        subprocess.run(
            [sys.executable, "-m", "app", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "users",
                "create",
                "--phone",
                PHONE,
                "--password",
                PASSWORD,
                "--name",
                "Bench",
                "--role",
                "citizen",
                "--format",
                "json",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        baseline = dd_baseline(folder, args.size_mib)
        port = free_port()
        server = subprocess.Popen(
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
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            login = httpx.post(
                f"{base}/api/v1/auth/login", json={"phone": PHONE, "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {json.loads(login.text)['access_token']}"}
            # Warm up the route (imports, connection) before measuring memory.
            tus_upload(base, headers, 4 * MIB)
            rss_before = memory_kib(server.pid, "VmRSS")
            # VmHWM is the peak since the process started, start-up included (~58 MiB above
            # the settled RSS here): reset it, so the peak is the upload's own.
            reset = reset_peak(server.pid)
            speed = tus_upload(base, headers, size)
            peak = memory_kib(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg()))
    print(f"dd (1 MiB blocks, fdatasync), {args.size_mib} MiB  {baseline:8.1f} MB/s (baseline)")
    print(
        f"tus upload, {args.size_mib} MiB in 64 MiB PATCHes  {speed:8.1f} MB/s "
        f"({speed / baseline:.0%} of the disk)"
    )
    print(
        f"server peak memory growth during the upload   {(peak - rss_before) / 1024:8.1f} MiB"
        + ("" if reset else "  (peak not reset: includes the start-up peak)")
    )
    print(f"photo processing, 1920x1080 JPEG (median)     {photo_ms(args.photos):8.1f} ms")


if __name__ == "__main__":
    main()
