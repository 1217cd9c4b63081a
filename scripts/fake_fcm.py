"""A fake FCM HTTP v1 server with its OAuth token endpoint, for tests, benchmarks and development.

Real HTTP on 127.0.0.1, so the real `firebase-admin` client runs unchanged against it:

    python scripts/fake_fcm.py --port 0 --credentials-out var/fake-fcm-sa.json
    # prints one JSON line: {"base_url", "port", "credentials_file", "project_id", "pid"}
    PUSH_BACKEND=fcm FCM_BASE_URL=<base_url> FCM_CREDENTIALS_FILE=var/fake-fcm-sa.json make run

Transport: like Google's endpoint, it speaks HTTP/2 — here over cleartext with prior knowledge
(h2c: a connection opening with the HTTP/2 preface), which is what firebase-admin's httpx client
(`http2=True`) uses when told there is no HTTP/1.1 (see app/notifications/fcm.py) — and HTTP/1.1
on the same port (the control endpoints, curl, plain clients). One asyncio process (uvloop when
installed): HTTP/2 framing by `h2`, HTTP/1.1 parsing by `httptools`, answers built from bytes
prepared once. It advertises 100 concurrent streams per connection, as FCM does.

Endpoints
- `POST /token` — OAuth 2.0 token endpoint (the service account's `token_uri` points here). It
  wants google-auth's form (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and a
  three-part JWT `assertion` naming an issuer and a scope that covers FCM); the signature
  and `aud` are not checked (firebase-admin always sets `aud` to Google's token URL, and a fake
  restarted with new credentials must still accept the running client's key).
- `POST /v1/projects/{project}/messages:send` — FCM v1 send; answers `{"name": ...}` or FCM's
  error JSON (`error.details[].errorCode`), e.g. UNREGISTERED (404), INVALID_ARGUMENT (400),
  UNAVAILABLE (503, Retry-After), INTERNAL (500), QUOTA_EXCEEDED (429, Retry-After),
  SENDER_ID_MISMATCH (403), THIRD_PARTY_AUTH_ERROR (401). A missing or unknown bearer token gets
  401 UNAUTHENTICATED; `"validate_only": true` is answered without counting or storing the message.
- Control, under `/_fake/`:
  - `POST /_fake/rules` {"token" | "prefix", "errors": ["UNAVAILABLE", ...], "sticky": false,
    "retry_after": 3}: the next sends to that token (or token prefix) answer these errors in
    order (or always the first one when sticky), then succeed;
  - `DELETE /_fake/rules`; `POST /_fake/token-endpoint` {"fail": n, "status": 503} (the next n
    token requests fail with that status: 503 is retried by google-auth, 400 is not);
  - `GET /_fake/messages[?token=...]`, `DELETE /_fake/messages`, `GET /_fake/stats`,
    `POST /_fake/reset`, `GET /_fake/health`.
Tokens starting with `unregistered-` always answer UNREGISTERED, `invalid-` INVALID_ARGUMENT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httptools
import orjson

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Send messages'.",
    ),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Any of these lets a token send through FCM (firebase-admin asks for cloud-platform, firebase...).
FCM_SCOPES = {
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/firebase",
    "https://www.googleapis.com/auth/cloud-platform",
}
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Connection-level receive window granted up front, topped up when half is used: one
# WINDOW_UPDATE per ~16k requests instead of one per request.
H2_WINDOW = 1 << 24

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def fcm_error(code: str) -> tuple[int, dict[str, Any]]:
    status, grpc_status, message = ERRORS[code]
    return status, {
        "error": {
            "code": status,
            "message": message,
            "status": grpc_status,
            "details": [{"@type": FCM_ERROR_TYPE, "errorCode": code}],
        }
    }


def _google_error(status: int, grpc_status: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": status, "message": message, "status": grpc_status}})


# Bodies that never change, encoded once.
ERROR_BODIES = {code: orjson.dumps(fcm_error(code)[1]) for code in ERRORS}
UNAUTHENTICATED = _google_error(
    401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
)
BAD_REQUEST = _google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
NOT_FOUND = _google_error(404, "NOT_FOUND", "Not found")
OK = orjson.dumps({"ok": True})


@dataclass
class Rule:
    errors: list[str]
    sticky: bool = False
    retry_after: int | None = None

    def next_error(self) -> str | None:
        if not self.errors:
            return None
        return self.errors[0] if self.sticky else self.errors.pop(0)


@dataclass
class State:
    project_id: str
    store: bool = True
    by_token: dict[str, Rule] = field(default_factory=dict)
    by_prefix: dict[str, Rule] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    issued: set[bytes] = field(default_factory=set)
    token_failures: int = 0
    token_failure_status: int = 503
    stats: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, key: str) -> None:
        self.stats[key] += 1

    def rule_for(self, token: str) -> Rule | None:
        rule = self.by_token.get(token)
        if rule is not None:
            return rule
        for prefix, candidate in self.by_prefix.items():
            if token.startswith(prefix):
                return candidate
        return None


def _b64json(part: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class FakeFcm:
    """What the fake answers: `handle(method, target, headers, body)`, whatever the transport."""

    def __init__(self, state: State) -> None:
        self.state = state
        # Message names as FCM's ("projects/p/messages/0:<id>%<sender>"), from a counter.
        self._ids = itertools.count(int(time.time() * 1000) << 20)
        self._sender = uuid.uuid4().hex[:16]

    def handle(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> Answer:
        path, _, query = target.partition(b"?")
        if path.endswith(b"/messages:send"):
            if method != b"POST":
                return 405, NOT_FOUND, []
            return self.send(path, headers, body)
        if path == b"/token" and method == b"POST":
            return self.token(body)
        if path.startswith(b"/_fake/"):
            return self.control(path.decode(), method.decode(), query.decode(), body)
        return 404, NOT_FOUND, []

    # ------------------------------------------------------------ OAuth token endpoint

    def token(self, body: bytes) -> Answer:
        state = self.state
        state.count("token_requests")
        if state.token_failures > 0:
            state.token_failures -= 1
            if state.token_failure_status == 503:
                return 503, b'{"error":"temporarily_unavailable"}', []
            return state.token_failure_status, self._grant_error("Invalid JWT"), []
        form = parse_qs(body.decode(errors="replace"))
        if form.get("grant_type", [""])[0] != JWT_BEARER:
            return 400, orjson.dumps({"error": "unsupported_grant_type"}), []
        try:
            _header, claims, _signature = form["assertion"][0].split(".")
            payload = _b64json(claims)
            scopes = set(str(payload.get("scope", "")).split())
            if not payload.get("iss") or not scopes & FCM_SCOPES:
                return 400, self._grant_error("Invalid scope or issuer"), []
            if float(payload.get("exp", 0)) < time.time():
                return 400, self._grant_error("Token has expired"), []
        except (KeyError, ValueError, TypeError, AttributeError):
            return 400, self._grant_error("Invalid JWT"), []
        token = f"fake-access-{uuid.uuid4().hex}"
        state.issued.add(token.encode())
        answer = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        return 200, orjson.dumps(answer), []

    @staticmethod
    def _grant_error(description: str) -> bytes:
        return orjson.dumps({"error": "invalid_grant", "error_description": description})

    # ------------------------------------------------------------ FCM v1 send

    def send(self, path: bytes, headers: dict[bytes, bytes], body: bytes) -> Answer:
        state = self.state
        stats = state.stats
        stats["received"] += 1
        auth = headers.get(b"authorization", b"")
        if auth[:7] != b"Bearer " or auth[7:] not in state.issued:
            stats["unauthenticated"] += 1
            return 401, UNAUTHENTICATED, []
        try:
            request = orjson.loads(body)
            message = request["message"]
            token = message["token"]
            data = message.get("data", {})
            if not isinstance(token, str) or not all(isinstance(v, str) for v in data.values()):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            stats["error:BAD_REQUEST"] += 1
            return 400, BAD_REQUEST, []
        code = retry_after = None
        if token.startswith("unregistered-"):
            code = "UNREGISTERED"
        elif token.startswith("invalid-"):
            code = "INVALID_ARGUMENT"
        elif state.by_token or state.by_prefix:
            rule = state.rule_for(token)
            if rule is not None:
                code, retry_after = rule.next_error(), rule.retry_after
        if code is not None:
            stats[f"error:{code}"] += 1
            extra = []
            if retry_after is not None and code in ("UNAVAILABLE", "QUOTA_EXCEEDED"):
                extra.append((b"retry-after", str(retry_after).encode()))
            return ERRORS[code][0], ERROR_BODIES[code], extra
        project = path.split(b"/")[3].decode()
        if request.get("validate_only"):
            stats["validated"] += 1
            return 200, orjson.dumps({"name": f"projects/{project}/messages/fake_message_id"}), []
        stats["accepted"] += 1
        name = f"projects/{project}/messages/0:{next(self._ids)}%{self._sender}"
        if state.store:
            state.messages.append({"name": name, "at": time.time(), "message": message})
        return 200, b'{"name":"' + name.encode() + b'"}', []

    # ------------------------------------------------------------ control

    def control(self, path: str, method: str, query: str, body: bytes) -> Answer:
        answer = self._control(path[len("/_fake/") :], method, query, body)
        if answer is None:
            return 404, orjson.dumps({"error": "unknown control endpoint"}), []
        status, payload = answer
        return status, payload if isinstance(payload, bytes) else orjson.dumps(payload), []

    def _control(self, what: str, method: str, query: str, body: bytes) -> tuple[int, Any] | None:
        state = self.state
        if what == "health":
            return 200, OK
        if what == "stats":
            return 200, {**state.stats, "stored": len(state.messages)}
        if what == "messages" and method == "GET":
            token = parse_qs(query).get("token", [None])[0]
            items = [m for m in state.messages if token is None or m["message"]["token"] == token]
            return 200, {"messages": items}
        if what == "messages" and method == "DELETE":
            state.messages.clear()
            return 200, OK
        if what == "rules" and method == "POST":
            return self._add_rule(orjson.loads(body))
        if what == "rules" and method == "DELETE":
            state.by_token.clear()
            state.by_prefix.clear()
            return 200, OK
        if what == "token-endpoint" and method == "POST":
            spec = orjson.loads(body)
            state.token_failures = int(spec.get("fail", 0))
            state.token_failure_status = int(spec.get("status", 503))
            return 200, OK
        if what == "reset" and method == "POST":
            state.by_token.clear()
            state.by_prefix.clear()
            state.messages.clear()
            state.stats.clear()
            state.token_failures = 0
            return 200, OK
        return None

    def _add_rule(self, spec: dict[str, Any]) -> tuple[int, Any]:
        rule = Rule(list(spec.get("errors", [])), bool(spec.get("sticky")), spec.get("retry_after"))
        unknown = [e for e in rule.errors if e not in ERRORS]
        if unknown:
            return 400, {"unknown_errors": unknown}
        if spec.get("token"):
            self.state.by_token[spec["token"]] = rule
        elif spec.get("prefix"):
            self.state.by_prefix[spec["prefix"]] = rule
        else:
            return 400, {"error": "token or prefix required"}
        return 200, OK


# ---------------------------------------------------------------- transports

Handle = Callable[[bytes, bytes, dict[bytes, bytes], bytes], Answer]
REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
JSON_TYPE = b"application/json; charset=UTF-8"


class Http1:
    """HTTP/1.1 with keep-alive, parsed by httptools; answers in order of the requests."""

    def __init__(self, transport: asyncio.Transport, handle: Handle) -> None:
        self.transport, self.handle = transport, handle
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.out: list[bytes] = []
        self.closing = False

    def feed(self, data: bytes) -> None:
        # Pipelined requests that arrive together are answered together, in one write.
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.out.append(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            self.closing = True
        self.flush()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status, raw, extra = self.handle(
            self.parser.get_method(), self.url, self.headers, b"".join(self.body)
        )
        head = [
            b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"")),
            b"content-type: " + JSON_TYPE,
            b"content-length: %d" % len(raw),
        ]
        head += [name + b": " + value for name, value in extra]
        if not self.parser.should_keep_alive():
            head.append(b"connection: close")
            self.closing = True
        self.out.append(b"\r\n".join(head) + b"\r\n\r\n" + raw)

    def flush(self) -> None:
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out = []
        if self.closing:
            self.transport.close()


class Http2:
    """HTTP/2 (h2c, prior knowledge) through the `h2` state machine."""

    CONFIG = h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )

    def __init__(self, transport: asyncio.Transport, handle: Handle) -> None:
        self.transport, self.handle = transport, handle
        # h2's own local settings advertise 100 concurrent streams, as FCM does.
        self.conn = h2.connection.H2Connection(config=self.CONFIG)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(H2_WINDOW)
        self.unacknowledged = 0
        self.requests: dict[int, tuple[dict[bytes, bytes], list[bytes]]] = {}
        # Answers waiting for the client's flow-control window (large answers only).
        self.blocked: dict[int, bytes] = {}
        transport.write(self.conn.data_to_send())

    def feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
            return
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                self.requests[event.stream_id] = (dict(event.headers), [])
            elif kind is h2.events.DataReceived:
                self.requests[event.stream_id][1].append(event.data)
                self.unacknowledged += event.flow_controlled_length
            elif kind is h2.events.StreamEnded:
                self.answer(event.stream_id)
            elif kind is h2.events.StreamReset:
                self.requests.pop(event.stream_id, None)
                self.blocked.pop(event.stream_id, None)
            elif kind is h2.events.WindowUpdated and self.blocked:
                self.unblock()
            elif kind is h2.events.ConnectionTerminated:
                self.transport.close()
        if self.unacknowledged > H2_WINDOW // 2:
            self.conn.increment_flow_control_window(self.unacknowledged)
            self.unacknowledged = 0
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)

    def answer(self, stream_id: int) -> None:
        headers, body = self.requests.pop(stream_id)
        status, raw, extra = self.handle(
            headers.get(b":method", b""), headers.get(b":path", b""), headers, b"".join(body)
        )
        self.conn.send_headers(
            stream_id,
            [
                (b":status", b"%d" % status),
                (b"content-type", JSON_TYPE),
                (b"content-length", b"%d" % len(raw)),
                *extra,
            ],
        )
        self._send_body(stream_id, raw)

    def _send_body(self, stream_id: int, raw: bytes) -> None:
        window = min(
            self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
        )
        if len(raw) <= window:
            self.conn.send_data(stream_id, raw, end_stream=True)
            return
        if window > 0:
            self.conn.send_data(stream_id, raw[:window])
        self.blocked[stream_id] = raw[window:]

    def unblock(self) -> None:
        for stream_id, rest in list(self.blocked.items()):
            del self.blocked[stream_id]
            self._send_body(stream_id, rest)


class Connection(asyncio.Protocol):
    """One client connection: HTTP/2 if it opens with the HTTP/2 preface, else HTTP/1.1."""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.transport: asyncio.Transport | None = None
        self.protocol: Http1 | Http2 | None = None
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Without it every small answer waits ~40 ms for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.protocol is None:
            assert self.transport is not None
            self.pending += data
            if len(self.pending) < len(H2_PREFACE) and H2_PREFACE.startswith(self.pending):
                return  # not yet enough to tell
            data, self.pending = self.pending, b""
            kind = Http2 if data.startswith(H2_PREFACE) else Http1
            self.protocol = kind(self.transport, self.handle)
        self.protocol.feed(data)


def write_credentials(path: Path, base_url: str, project_id: str) -> None:
    """A service-account JSON whose token_uri is this fake, with a fresh RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": project_id,
                "private_key_id": uuid.uuid4().hex,
                "private_key": pem,
                "client_email": f"fake-fcm@{project_id}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{base_url}/token",
            }
        ),
        encoding="utf-8",
    )


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


async def serve(sock: socket.socket, app: FakeFcm) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(app.handle), sock=sock)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project-id", default="demo-thainguyen")
    parser.add_argument(
        "--credentials-out", type=Path, help="write a service-account JSON pointing at this fake"
    )
    parser.add_argument(
        "--no-store", action="store_true", help="count messages without keeping them (benchmarks)"
    )
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("the fake FCM listens on 127.0.0.0/8 only")
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    base_url = f"http://{args.host}:{port}"
    if args.credentials_out:
        write_credentials(args.credentials_out, base_url, args.project_id)
    app = FakeFcm(State(project_id=args.project_id, store=not args.no_store))
    print(
        json.dumps(
            {
                "base_url": base_url,
                "port": port,
                "project_id": args.project_id,
                "credentials_file": str(args.credentials_out or ""),
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(sock, app))
    return 0


@dataclass
class Spawned:
    """A fake FCM running in its own process (see `spawn`)."""

    process: subprocess.Popen[str]
    base_url: str
    port: int
    credentials_file: Path
    project_id: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(
    credentials_out: Path, *, port: int = 0, project_id: str = "demo-thainguyen", store: bool = True
) -> Spawned:
    """Start the fake in a subprocess and wait until it listens."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--port",
        str(port),
        "--project-id",
        project_id,
        "--credentials-out",
        str(credentials_out),
    ]
    if not store:
        command.append("--no-store")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise RuntimeError("fake FCM did not start")
    info = json.loads(line)
    return Spawned(process, info["base_url"], info["port"], credentials_out, project_id)


if __name__ == "__main__":
    sys.exit(main())
