"""A fake FCM HTTP v1 server with its OAuth token endpoint, for tests, benchmarks and development.

Real HTTP on 127.0.0.1, so the real `firebase-admin` client runs unchanged against it:

    python scripts/fake_fcm.py --port 0 --credentials-out var/fake-fcm-sa.json
    # prints one JSON line: {"base_url", "port", "credentials_file", "project_id", "pid"}
    PUSH_BACKEND=fcm FCM_BASE_URL=<base_url> FCM_CREDENTIALS_FILE=var/fake-fcm-sa.json make run

Endpoints
- `POST /token` — OAuth 2.0 token endpoint (the service account's `token_uri` points here). The
  signed JWT assertion is accepted without checking its `aud`, which firebase-admin always sets to
  Google's token URL.
- `POST /v1/projects/{project}/messages:send` — FCM v1 send; answers `{"name": ...}` or FCM's
  error JSON (`error.details[].errorCode`), e.g. UNREGISTERED (404), INVALID_ARGUMENT (400),
  UNAVAILABLE (503, Retry-After), INTERNAL (500), QUOTA_EXCEEDED (429, Retry-After),
  SENDER_ID_MISMATCH (403), THIRD_PARTY_AUTH_ERROR (401).
- Control, under `/_fake/`:
  - `POST /_fake/rules` {"token" | "prefix", "errors": ["UNAVAILABLE", ...], "sticky": false,
    "retry_after": 3}: the next sends to that token (or token prefix) answer these errors in
    order (or always the first one when sticky), then succeed;
  - `DELETE /_fake/rules`; `POST /_fake/token-endpoint` {"fail": n, "status": 503} (the next n
    token requests fail with that status: 503 is retried by google-auth, 400 is not);
  - `GET /_fake/messages[?token=...]`, `DELETE /_fake/messages`, `GET /_fake/stats`,
    `POST /_fake/reset`.
Tokens starting with `unregistered-` always answer UNREGISTERED, `invalid-` INVALID_ARGUMENT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

try:
    import orjson

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)
except ImportError:  # pragma: no cover - orjson is a project dependency
    def _loads(raw: bytes) -> Any:
        return json.loads(raw)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()


FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT",
                         "The registration token is not a valid FCM registration token"),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED",
                       "Quota exceeded for quota metric 'Send messages'."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}


def fcm_error(code: str) -> tuple[int, dict[str, Any]]:
    status, grpc_status, message = ERRORS[code]
    return status, {"error": {"code": status, "message": message, "status": grpc_status,
                              "details": [{"@type": FCM_ERROR_TYPE, "errorCode": code}]}}


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
    issued: set[str] = field(default_factory=set)
    token_failures: int = 0
    token_failure_status: int = 503
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def rule_for(self, token: str) -> Rule | None:
        rule = self.by_token.get(token)
        if rule is not None:
            return rule
        for prefix, candidate in self.by_prefix.items():
            if token.startswith(prefix):
                return candidate
        return None


class FakeFcm:
    """The ASGI application."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, headers = self.route(scope, body)
        raw = _dumps(payload)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode()), *headers]})
        await send({"type": "http.response.body", "body": raw})

    def route(self, scope: dict[str, Any], body: bytes) -> tuple[int, Any, list[Any]]:
        path, method = scope["path"], scope["method"]
        if path.endswith("/messages:send") and method == "POST":
            return self.send(scope, body)
        if path == "/token" and method == "POST":
            return self.token()
        if path.startswith("/_fake/"):
            return self.control(path, method, scope, body)
        return 404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}}, []

    def token(self) -> tuple[int, Any, list[Any]]:
        state = self.state
        state.count("token_requests")
        if state.token_failures > 0:
            state.token_failures -= 1
            if state.token_failure_status == 503:
                return 503, {"error": "temporarily_unavailable"}, []
            return state.token_failure_status, {"error": "invalid_grant",
                                                "error_description": "Invalid JWT"}, []
        token = f"fake-access-{uuid.uuid4().hex}"
        state.issued.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}, []

    def send(self, scope: dict[str, Any], body: bytes) -> tuple[int, Any, list[Any]]:
        state = self.state
        state.count("received")
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if not auth.startswith("Bearer ") or auth[7:] not in state.issued:
            state.count("unauthenticated")
            message = "Request had invalid authentication credentials."
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                   "message": message}}, []
        project = scope["path"].split("/")[3]
        try:
            message = _loads(body)["message"]
            token = message["token"]
            if not isinstance(token, str) or not all(
                isinstance(v, str) for v in message.get("data", {}).values()
            ):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            state.count("error:BAD_REQUEST")
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                   "message": "Request contains an invalid argument."}}, []
        code = None
        retry_after = None
        if token.startswith("unregistered-"):
            code = "UNREGISTERED"
        elif token.startswith("invalid-"):
            code = "INVALID_ARGUMENT"
        else:
            rule = state.rule_for(token)
            if rule is not None:
                code, retry_after = rule.next_error(), rule.retry_after
        if code is not None:
            state.count(f"error:{code}")
            status, payload = fcm_error(code)
            headers = []
            if retry_after is not None and code in ("UNAVAILABLE", "QUOTA_EXCEEDED"):
                headers.append((b"retry-after", str(retry_after).encode()))
            return status, payload, headers
        state.count("accepted")
        name = f"projects/{project}/messages/{uuid.uuid4().hex}"
        if state.store:
            state.messages.append({"name": name, "at": time.time(), "message": message})
        return 200, {"name": name}, []

    def control(self, path: str, method: str, scope: dict[str, Any],
                body: bytes) -> tuple[int, Any, list[Any]]:
        state = self.state
        what = path[len("/_fake/"):]
        if what == "health":
            return 200, {"ok": True}, []
        if what == "stats":
            return 200, {**state.stats, "stored": len(state.messages)}, []
        if what == "messages" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode())
            token = query.get("token", [None])[0]
            items = [m for m in state.messages if token is None or m["message"]["token"] == token]
            return 200, {"messages": items}, []
        if what == "messages" and method == "DELETE":
            state.messages.clear()
            return 200, {"ok": True}, []
        if what == "rules" and method == "POST":
            spec = _loads(body)
            rule = Rule(list(spec.get("errors", [])), bool(spec.get("sticky")),
                        spec.get("retry_after"))
            unknown = [e for e in rule.errors if e not in ERRORS]
            if unknown:
                return 400, {"unknown_errors": unknown}, []
            if spec.get("token"):
                state.by_token[spec["token"]] = rule
            else:
                state.by_prefix[spec["prefix"]] = rule
            return 200, {"ok": True}, []
        if what == "rules" and method == "DELETE":
            state.by_token.clear()
            state.by_prefix.clear()
            return 200, {"ok": True}, []
        if what == "token-endpoint" and method == "POST":
            spec = _loads(body)
            state.token_failures = int(spec.get("fail", 0))
            state.token_failure_status = int(spec.get("status", 503))
            return 200, {"ok": True}, []
        if what == "reset" and method == "POST":
            state.by_token.clear()
            state.by_prefix.clear()
            state.messages.clear()
            state.stats.clear()
            state.token_failures = 0
            return 200, {"ok": True}, []
        return 404, {"error": "unknown control endpoint"}, []


def write_credentials(path: Path, base_url: str, project_id: str) -> None:
    """A service-account JSON whose token_uri is this fake, with a fresh RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"fake-fcm@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{base_url}/token",
    }), encoding="utf-8")


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project-id", default="demo-thainguyen")
    parser.add_argument("--credentials-out", type=Path,
                        help="write a service-account JSON pointing at this fake")
    parser.add_argument("--no-store", action="store_true",
                        help="count messages without keeping them (benchmarks)")
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("the fake FCM listens on 127.0.0.0/8 only")
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    base_url = f"http://{args.host}:{port}"
    if args.credentials_out:
        write_credentials(args.credentials_out, base_url, args.project_id)
    state = State(project_id=args.project_id, store=not args.no_store)
    config = uvicorn.Config(FakeFcm(state), log_level="warning", access_log=False,
                            lifespan="off", http="httptools", backlog=2048)
    server = uvicorn.Server(config)
    print(json.dumps({"base_url": base_url, "port": port, "project_id": args.project_id,
                      "credentials_file": str(args.credentials_out or ""), "pid": os.getpid()}),
          flush=True)
    asyncio.run(server.serve(sockets=[sock]))
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


def spawn(credentials_out: Path, *, port: int = 0, project_id: str = "demo-thainguyen",
          store: bool = True) -> Spawned:
    """Start the fake in a subprocess and wait until it listens."""
    command = [sys.executable, str(Path(__file__).resolve()), "--port", str(port),
               "--project-id", project_id, "--credentials-out", str(credentials_out)]
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
