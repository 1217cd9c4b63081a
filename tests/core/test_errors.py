"""Every client mistake is an RFC 9457 problem with a stable code, in Vietnamese or English."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.admin_units.models import AdminUnit
from app.core import errors
from app.core.audit import AuditEvent, record
from app.core.config import get_settings
from app.core.db import DbSession
from app.core.i18n import negotiate
from app.main import create_app
from tests.conftest import count
from tests.support.flows import bearer, register, seed_wards
from tests.support.problems import assert_problem

LIMIT = get_settings().max_request_body_bytes


@pytest.fixture(scope="module")
def app_with_test_routes() -> FastAPI:
    """The real application plus routes that exist only in these tests."""
    application = create_app(run_worker=False)

    @application.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("db password is hunter2 at /srv/secret/config.py")

    @application.get("/test-only/teapot")
    async def teapot() -> None:
        raise StarletteHTTPException(status_code=418)

    @application.post("/test-only/commit-fails")
    async def commit_fails(session: DbSession) -> dict[str, bool]:
        # Not flushed: the duplicate key is only found when the request's transaction commits.
        session.add(AdminUnit(code="TNG", name="Trùng", name_en="Duplicate", level="province"))
        return {"saved": True}

    @application.post("/test-only/upload")
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"bytes": len(await file.read())}

    @application.post("/test-only/stream-into-db")
    async def stream_into_db(request: Request, session: DbSession) -> dict[str, int]:
        # Writes as the body arrives, as an upload handler would.
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if chunk:
                await record(session, None, "test.chunk_received", details={"bytes": len(chunk)})
        return {"bytes": size}

    return application


@pytest.fixture
async def raw(app_with_test_routes: FastAPI, db: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_with_test_routes)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def chunks(*sizes: int) -> AsyncIterator[bytes]:
    for size in sizes:
        yield b"x" * size


# ---------------------------------------------------------------- shapes and languages


async def test_malformed_json_is_a_400_problem_in_vietnamese_by_default(client):
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"phone": "0912',
        headers={"content-type": "application/json"},
    )

    body = assert_problem(response, 400, "request.malformed_json")
    assert body["detail"] == errors.MALFORMED_JSON.vi
    assert response.headers["content-language"] == "vi"


async def test_accept_language_en_answers_in_english(client):
    response = await client.post(
        "/api/v1/auth/login",
        content=b"{",
        headers={"content-type": "application/json", "accept-language": "en"},
    )

    body = assert_problem(response, 400, "request.malformed_json")
    assert body["detail"] == errors.MALFORMED_JSON.en
    assert response.headers["content-language"] == "en"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "vi"),
        ("", "vi"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("vi;q=0.4, en;q=0.9", "en"),
        ("en;q=0.3, vi;q=0.8", "vi"),
        ("en;q=0, vi", "vi"),
        ("en;q=0", "vi"),
        ("fr, de;q=0.9", "vi"),
        ("fr, en-GB;q=0.5", "en"),
        ("EN", "en"),
        ("en;q=not-a-number, vi;q=0.1", "vi"),
    ],
)
def test_language_negotiation_honours_q_values(header, expected):
    assert negotiate(header) == expected


async def test_q_values_decide_the_language_of_a_problem(client):
    response = await client.get("/no/such/route", headers={"accept-language": "vi;q=0.2, en;q=0.7"})

    assert assert_problem(response, 404, "http.not_found")["detail"] == errors.NOT_FOUND.en


async def test_schema_errors_are_422_with_field_errors(client):
    response = await client.post(
        "/api/v1/auth/login",
        json={"phone": ["not", "a", "string"]},
        headers={"accept-language": "en"},
    )

    body = assert_problem(response, 422, "request.validation_failed")
    assert body["detail"] == errors.VALIDATION_FAILED.en
    by_field = {e["field"]: e for e in body["errors"]}
    assert by_field["body.phone"]["code"] == "string_type"
    assert by_field["body.password"]["code"] == "missing"
    assert all(e["message"] for e in body["errors"])


async def test_unknown_route_is_404_problem(client):
    assert_problem(await client.get("/api/v1/nothing-here"), 404, "http.not_found")


async def test_wrong_method_is_405_problem_with_allow(client):
    response = await client.delete("/api/v1/auth/login")

    assert_problem(response, 405, "http.method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_http_exception_without_a_code_keeps_its_status(raw):
    body = assert_problem(await raw.get("/test-only/teapot"), 418, "request.bad_request")

    assert body["status"] == 418


# ---------------------------------------------------------------- body size


async def test_body_over_the_limit_is_refused_by_content_length(client):
    response = await client.post(
        "/api/v1/auth/login",
        content=b"x" * (LIMIT + 1),
        headers={"content-type": "application/json", "accept-language": "en"},
    )

    body = assert_problem(response, 413, "request.body_too_large")
    assert body["detail"] == errors.BODY_TOO_LARGE.en.format(limit=LIMIT)
    assert response.headers["connection"] == "close"


async def test_the_upload_exemption_covers_whole_path_segments_only(client):
    big = b"x" * (LIMIT + 1)

    exempt = await client.post("/api/v1/media/__no_such_route__", content=big)
    lookalike = await client.post("/api/v1/mediax", content=big)

    assert exempt.status_code != 413  # left to the upload routes' own limits
    assert_problem(lookalike, 413, "request.body_too_large")


async def test_body_at_the_limit_is_read(client):
    response = await client.post(
        "/api/v1/auth/login", content=b" " * LIMIT, headers={"content-type": "application/json"}
    )

    # Read and parsed (whitespace is not JSON), not refused for its size.
    assert_problem(response, 400, "request.malformed_json")


async def test_streamed_body_without_content_length_over_the_limit_is_413(client):
    half = LIMIT // 2 + 1
    response = await client.post(
        "/api/v1/auth/login",
        content=chunks(half, half),
        headers={"content-type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    body = assert_problem(response, 413, "request.body_too_large")
    assert str(LIMIT) in body["detail"]
    assert response.headers["connection"] == "close"


async def test_streamed_multipart_over_the_limit_is_413_not_a_parse_error(raw):
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        'filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()

    async def multipart() -> AsyncIterator[bytes]:
        yield head
        for _ in range(4):
            yield b"x" * (LIMIT // 3)
        yield f"\r\n--{boundary}--\r\n".encode()

    small = await raw.post(
        "/test-only/upload",
        content=head + b"abc" + f"\r\n--{boundary}--\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert small.json() == {"bytes": 3}

    response = await raw.post(
        "/test-only/upload",
        content=multipart(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )

    assert_problem(response, 413, "request.body_too_large")


async def test_streamed_body_over_the_limit_keeps_nothing_the_route_wrote(raw, db):
    small = await raw.post("/test-only/stream-into-db", content=chunks(10, 10))
    assert small.status_code == 200
    assert await count(db, AuditEvent) == 2  # the route does write and commit

    half = LIMIT // 2 + 1
    response = await raw.post("/test-only/stream-into-db", content=chunks(half, half))

    assert_problem(response, 413, "request.body_too_large")
    assert await count(db, AuditEvent) == 2  # the first chunk's row was rolled back


@pytest.fixture
def tiny_limit_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """The application on a real uvicorn on 127.0.0.1, with a 100-byte body limit."""
    monkeypatch.setenv("MAX_REQUEST_BODY_BYTES", "100")
    get_settings.cache_clear()
    try:
        application = create_app(run_worker=False)
    finally:
        monkeypatch.delenv("MAX_REQUEST_BODY_BYTES")
        get_settings.cache_clear()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(application, lifespan="off", log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def test_real_server_answers_a_chunked_oversized_body_with_one_clean_413(tiny_limit_server):
    host, port = tiny_limit_server
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nX-Request-ID: big-body-1\r\n\r\n"
    )
    chunk = b"x" * 60
    writer.write(head.encode() + (b"3c\r\n" + chunk + b"\r\n") * 2 + b"0\r\n\r\n")
    await writer.drain()

    raw_answer = await asyncio.wait_for(reader.read(), timeout=10)  # until the server closes
    writer.close()

    head_part, _, body_part = raw_answer.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0].startswith("HTTP/1.1 413 ")
    assert raw_answer.count(b"HTTP/1.1 ") == 1  # one response, nothing written before or after it
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"] == "big-body-1"
    assert len(body_part) == int(headers["content-length"])
    body = json.loads(body_part)
    assert body["code"] == "request.body_too_large"
    assert body["request_id"] == "big-body-1"
    assert "100" in body["detail"]


# ---------------------------------------------------------------- NUL characters


def nul_fields(response: httpx.Response) -> list[str]:
    body = assert_problem(response, 422, "request.validation_failed")
    return [e["field"] for e in body["errors"] if e["code"] == "string_nul_character"]


async def test_nul_character_in_json_is_refused_with_the_field_named(client):
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"phone": "0912\\u0000345678", "password": "x", "x": {"y": ["a", "b\\u0000"]}}',
        headers={"content-type": "application/json"},
    )

    assert nul_fields(response) == ["body.phone", "body.x.y.1"]


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(client):
    response = await client.post("/api/v1/auth/login", json={"phone": "\\u0000", "password": "x"})

    assert b"\\\\u0000" in response.request.content  # the JSON text has the escape sequence
    assert "string_nul_character" not in response.text
    assert response.json()["code"] == "auth.invalid_credentials"  # reached the service


async def test_nul_character_in_query_form_or_path_is_refused(client):
    query = await client.get("/api/v1/admin-units?parent=TNG%00x")
    form = await client.post(
        "/api/v1/auth/login",
        content=b"phone=09%0012&password=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    path = await client.get("/api/v1/staff/citizens/abc%00def")

    assert nul_fields(query) == ["query.parent"]
    assert nul_fields(form) == ["body.phone"]
    assert nul_fields(path) == ["path"]


async def test_nul_character_in_a_profile_name_is_a_422_not_a_database_error(client, sms_log):
    tokens = await register(client, sms_log, "0912345670")

    response = await client.patch(
        "/api/v1/me", json={"full_name": "An\u0000Bình"}, headers=bearer(tokens)
    )

    assert nul_fields(response) == ["body.full_name"]
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.json()["full_name"] == "Nguyễn Văn An"


# ---------------------------------------------------------------- unexpected errors


async def test_unexpected_exception_is_a_500_problem_that_leaks_nothing(raw):
    response = await raw.get("/test-only/boom", headers={"x-request-id": "trace-me-42"})

    body = assert_problem(response, 500, "internal.error")
    assert body["detail"] == errors.INTERNAL.vi
    assert body["request_id"] == "trace-me-42"
    for secret in ("hunter2", "RuntimeError", "Traceback", "secret", ".py"):
        assert secret not in response.text


async def test_a_request_whose_commit_fails_is_not_answered_with_success(raw, db):
    await seed_wards(db)

    response = await raw.post("/test-only/commit-fails")

    # The transaction ends before the answer is sent, so the answer tells the truth.
    assert_problem(response, 500, "internal.error")
    assert (await db.get(AdminUnit, "TNG")).name != "Trùng"  # type: ignore[union-attr]


# ---------------------------------------------------------------- request ids


async def test_valid_request_id_is_echoed(client):
    response = await client.get("/api/v1/nope", headers={"x-request-id": "mobile-7f3a:42"})

    assert response.headers["x-request-id"] == "mobile-7f3a:42"
    assert response.json()["request_id"] == "mobile-7f3a:42"


@pytest.mark.parametrize("bad", ["has spaces", "x" * 129, "<script>", "a/../b", ""])
async def test_invalid_request_id_is_replaced(client, bad):
    response = await client.get("/api/v1/nope", headers={"x-request-id": bad})

    generated = response.headers["x-request-id"]
    assert generated != bad
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json()["request_id"] == generated


async def test_request_id_is_generated_when_missing_and_differs_per_request(client):
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
