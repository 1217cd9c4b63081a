"""A fake SMS gateway: a real HTTP server on 127.0.0.1 speaking what `HttpSmsBackend` sends.

    POST   /messages       {"to", "body", "sender"} with `Authorization: Bearer <key>`
                           -> 202 {"id", "status": "queued"}; 401 wrong key; 400 bad JSON
    GET    /messages       -> {"messages": [...]}   what was accepted, oldest first
    DELETE /messages       -> forget them
    POST   /control/fail   {"count": N, "status": 503} -> the next N sends answer that status

Every endpoint wants the key. Standalone, for development:

    python scripts/fake_sms_gateway.py --port 8025 --api-key dev-sms-key
    SMS_BACKEND=http SMS_GATEWAY_URL=http://127.0.0.1:8025/messages \
        SMS_GATEWAY_API_KEY=dev-sms-key make run

In tests: `with FakeSmsGateway(api_key="k") as gateway:` serves on a free port in a thread;
`gateway.url`, `gateway.messages`, `gateway.fail_next(2)`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 64 * 1024


class FakeSmsGateway:
    def __init__(
        self,
        api_key: str = "fake-sms-key",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        quiet: bool = True,
    ) -> None:
        self.api_key = api_key
        self.quiet = quiet
        self.attempts = 0  # POST /messages seen, accepted or not
        self._messages: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """What SMS_GATEWAY_URL should be."""
        return self.base_url + "/messages"

    def start(self) -> FakeSmsGateway:
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="fake-sms-gateway"
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSmsGateway:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- state

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._failures.clear()
            self.attempts = 0

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next `count` sends answer `status` and record nothing."""
        with self._lock:
            self._failures.extend([status] * count)

    def accept(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.attempts += 1
            if self._failures:
                status = self._failures.pop(0)
                return status, {"error": "gateway_unavailable", "status": status}
            message = {
                "id": uuid.uuid4().hex,
                "to": payload["to"],
                "body": payload["body"],
                "sender": payload["sender"],
                "received_at": datetime.now(UTC).isoformat(),
            }
            self._messages.append(message)
            return HTTPStatus.ACCEPTED, {"id": message["id"], "status": "queued"}


def _valid_message(payload: Any) -> bool:
    return isinstance(payload, dict) and all(
        isinstance(payload.get(key), str) and payload[key] for key in ("to", "body", "sender")
    )


def _handler_for(gateway: FakeSmsGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeSmsGateway/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            if not gateway.quiet:
                super().log_message(format, *args)

        def _answer(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {gateway.api_key}":
                return True
            self._answer(HTTPStatus.UNAUTHORIZED, {"error": "unauthorized"})
            return False

        def _json(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True  # the unread body cannot be skipped
                raise ValueError("body too large")
            return json.loads(self.rfile.read(length) or b"null")

        def do_POST(self) -> None:
            if self.path not in ("/messages", "/control/fail"):
                self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found"})
                return
            try:
                payload = self._json()
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "invalid_json"})
                return
            if not self._authorized():
                return
            if self.path == "/control/fail":
                count = payload.get("count", 1) if isinstance(payload, dict) else 1
                status = payload.get("status", 503) if isinstance(payload, dict) else 503
                gateway.fail_next(int(count), int(status))
                self._answer(HTTPStatus.OK, {"failing_next": int(count), "status": int(status)})
                return
            if not _valid_message(payload):
                self._answer(
                    HTTPStatus.BAD_REQUEST,
                    {"error": "invalid_message", "required": ["to", "body", "sender"]},
                )
                return
            status, answer = gateway.accept(payload)
            self._answer(status, answer)

        def do_GET(self) -> None:
            if self.path != "/messages":
                self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found"})
            elif self._authorized():
                self._answer(HTTPStatus.OK, {"messages": gateway.messages})

        def do_DELETE(self) -> None:
            if self.path != "/messages":
                self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found"})
            elif self._authorized():
                gateway.clear()
                self._answer(HTTPStatus.OK, {"cleared": True})

    return Handler


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument("--api-key", default="dev-sms-key")
    parser.add_argument(
        "--fail-next", type=int, default=0, help="answer 503 to this many sends first"
    )
    args = parser.parse_args(argv)

    gateway = FakeSmsGateway(args.api_key, args.host, args.port, quiet=False)
    gateway.fail_next(args.fail_next)
    # SIGTERM ends it like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    # The first line says where it listens (tests start it with --port 0 and read it).
    print(f"fake SMS gateway listening on {gateway.url}", flush=True)
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
