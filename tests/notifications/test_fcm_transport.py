"""The wire under firebase-admin (app/notifications/http1.py) and the fake FCM's own protocol
behaviour: HTTP/2 with prior knowledge, pipelined HTTP/1.1, the OAuth grant it wants."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.core import clock
from app.core.db import new_id, session_factory
from app.notifications import service
from app.notifications.delivery import insert_notes
from app.notifications.http1 import Http1Pool, LeanClient
from app.notifications.models import NewNotification
from tests.notifications.helpers import account, add_device, deliveries, devices_of, inbox_rows
from tests.support.flows import run_jobs


async def _access_token(http: httpx.AsyncClient) -> str:
    """A token from the fake's OAuth endpoint, asked for as google-auth asks."""
    header = "eyJhbGciOiJSUzI1NiJ9"
    claims = (
        "eyJpc3MiOiJmYWtlQGRlbW8uaWFtLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzY29wZSI6Imh0dHBzOi8vd3d3Lmdvb2ds"
        "ZWFwaXMuY29tL2F1dGgvZmlyZWJhc2UubWVzc2FnaW5nIiwiZXhwIjo0MTAyNDQ0ODAwfQ"
    )  # {"iss": "fake@demo.iam...", "scope": ".../auth/firebase.messaging", "exp": 4102444800}
    response = await http.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": f"{header}.{claims}.c2ln",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_fake_token_endpoint_refuses_what_google_would(fake_fcm) -> None:
    http = fake_fcm.http
    wrong_grant = await http.post("/token", data={"grant_type": "password", "assertion": "a.b.c"})
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    garbled = await http.post(
        "/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "nope"},
    )
    assert garbled.status_code == 400 and garbled.json()["error"] == "invalid_grant"


async def test_fake_fcm_answers_http2_with_prior_knowledge_like_http1(fake_fcm) -> None:
    token = await _access_token(fake_fcm.http)
    url = f"{fake_fcm.server.base_url}/v1/projects/demo/messages:send"
    headers = {"Authorization": f"Bearer {token}"}
    await fake_fcm.rule(token="h2-flaky", errors=["UNAVAILABLE"], retry_after=7)
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        sent = await h2.post(url, headers=headers, json={"message": {"token": "h2-ok"}})
        flaky = await h2.post(url, headers=headers, json={"message": {"token": "h2-flaky"}})
        gone = await h2.post(url, headers=headers, json={"message": {"token": "unregistered-x"}})
        anonymous = await h2.post(url, json={"message": {"token": "h2-ok"}})
    assert sent.http_version == "HTTP/2"
    assert sent.status_code == 200 and sent.json()["name"].startswith("projects/demo/messages/")
    assert flaky.status_code == 503 and flaky.headers["retry-after"] == "7"
    assert flaky.json()["error"]["details"][0]["errorCode"] == "UNAVAILABLE"
    assert gone.status_code == 404
    assert gone.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"
    assert anonymous.status_code == 401
    assert [m["token"] for m in await fake_fcm.messages()] == ["h2-ok"]


async def test_pipelined_requests_get_their_own_answers_in_order(fake_fcm) -> None:
    token = await _access_token(fake_fcm.http)
    pool = Http1Pool(max_connections=2, depth=50)

    async def current() -> str:
        return token

    client = LeanClient(pool, {}, current, lambda stale: current())
    url = f"{fake_fcm.server.base_url}/v1/projects/demo/messages:send"
    await fake_fcm.rule(prefix="pipe-7", errors=["INTERNAL"], sticky=True)
    try:
        answers = await asyncio.gather(
            *(
                client.request("post", url, json={"message": {"token": f"pipe-{i}"}})
                for i in range(300)
            )
        )
    finally:
        await client.aclose()
    for i, answer in enumerate(answers):
        expected = 500 if str(i).startswith("7") else 200
        assert answer.status_code == expected, (i, answer.text)
    stored = [m["token"] for m in await fake_fcm.messages()]
    assert sorted(stored) == sorted(f"pipe-{i}" for i in range(300) if not str(i).startswith("7"))


async def test_an_fcm_that_never_answers_times_out_within_the_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Http1Pool(max_connections=1)
    started = time.monotonic()
    try:
        with pytest.raises(httpx.ReadTimeout):
            url = httpx.URL(f"http://127.0.0.1:{port}/x")
            await pool.round_trip(url, b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n", 0.5)
    finally:
        await pool.aclose()
        server.close()
    # The watchdog looks once a second: the deadline is kept to the second.
    assert time.monotonic() - started < 5  # the silent server would hold it for 30 s


async def test_an_unreachable_fcm_turns_the_batch_into_retries(
    client, db, fake_fcm, settings_env
) -> None:
    an = await account(client, db, "0916100001")
    await add_device(client, an, "fcm-unreachable")
    settings_env.set(fcm_base_url="http://127.0.0.1:9")  # nothing listens there
    await service.notify(db, [an.id], "dossier.status_changed", {"dossier_id": "d", "status": "ok"})
    await db.commit()
    await run_jobs()
    [row] = await deliveries()
    assert row.status == "retrying" and row.error_code == "UNAVAILABLE"
    assert await devices_of(an.id)  # a connection failure is not the token's fault


async def test_bulk_inbox_rows_roll_back_with_their_transaction(client, db) -> None:
    """COPY (PostgreSQL) runs inside the session's transaction, not in autocommit, even as
    its first statement."""
    an = await account(client, db, "0916100002")
    row = NewNotification(
        new_id(), an.id, "announcement", "ward_announcements", False, "vi", "t", "b",
        "cthainguyen://x", {"kind": "announcement"}, None, 60, None, None, "sent", clock.now(),
    )  # fmt: skip
    async with session_factory()() as session:
        await session.begin()
        await insert_notes(session, [row])
        await session.rollback()
    assert await inbox_rows(an.id) == []
    async with session_factory()() as session, session.begin():
        await insert_notes(session, [row])
    [stored] = await inbox_rows(an.id)
    assert stored.data == {"kind": "announcement"} and stored.created_at == row.created_at
