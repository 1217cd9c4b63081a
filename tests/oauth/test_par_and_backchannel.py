"""Pushed authorization requests (RFC 9126) and back-channel logout delivery through the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.db import session_factory
from app.core.jobs import Job, Worker, load_job_modules
from app.oauth.service import BACKCHANNEL_LOGOUT
from tests.oauth.support import Browser, base_params, exchange, make_client, query_of
from tests.oauth.test_partner_flows import LogoutReceiver, receiver  # noqa: F401 (fixture)
from tests.support.flows import run_jobs

pytestmark = pytest.mark.slow


async def push(live_url: str, rp: Any, params: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.post("/oauth/par", data=params, auth=(rp.client.id, rp.client_secret))


async def test_a_pushed_request_is_used_once(live_url: str, rp: Any, browser: Browser) -> None:
    verifier, params = base_params(rp.client.id)
    pushed = await push(live_url, rp, params)
    assert pushed.status_code == 201
    assert pushed.json()["expires_in"] <= 90
    start = {"client_id": rp.client.id, "request_uri": pushed.json()["request_uri"]}
    final = await browser.follow_until_client(
        await browser.http.get("/oauth/authorize", params=start)
    )
    code = query_of(final.headers["location"])["code"]
    assert (await exchange(live_url, rp, code, verifier)).status_code == 200
    again = await browser.http.get("/oauth/authorize", params=start)
    assert again.status_code == 400


async def test_a_pushed_request_expires(live_url: str, rp: Any, browser: Browser) -> None:
    _, params = base_params(rp.client.id)
    pushed = await push(live_url, rp, params)
    clock.advance(timedelta(seconds=120))
    response = await browser.http.get(
        "/oauth/authorize",
        params={"client_id": rp.client.id, "request_uri": pushed.json()["request_uri"]},
    )
    assert response.status_code == 400


async def test_a_pushed_request_belongs_to_its_client(
    live_url: str, rp: Any, browser: Browser, db: AsyncSession
) -> None:
    other = await make_client(db, name="Khác")
    _, params = base_params(rp.client.id)
    pushed = await push(live_url, rp, params)
    response = await browser.http.get(
        "/oauth/authorize",
        params={"client_id": other.client.id, "request_uri": pushed.json()["request_uri"]},
    )
    assert response.status_code == 400


async def test_par_validates_like_the_authorization_endpoint(live_url: str, rp: Any) -> None:
    _, params = base_params(rp.client.id, redirect_uri="https://evil.example.com/cb")
    refused = await push(live_url, rp, params)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    _, params = base_params(rp.client.id, code_challenge="")
    assert (await push(live_url, rp, params)).json()["error"] == "invalid_request"
    _, params = base_params(rp.client.id, request_uri="urn:x")
    assert (await push(live_url, rp, params)).json()["error"] == "invalid_request"
    async with httpx.AsyncClient(base_url=live_url) as http:
        unauthenticated = await http.post("/oauth/par", data=base_params(rp.client.id)[1])
    assert unauthenticated.json()["error"] == "invalid_client"


async def test_back_channel_logout_is_retried_until_the_partner_answers(
    live_url: str,
    browser: Browser,
    db: AsyncSession,
    receiver: LogoutReceiver,  # noqa: F811
) -> None:
    rp = await make_client(db, backchannel_logout_uri=receiver.url)
    code, verifier, _ = await browser.code_for(rp.client.id)
    id_token = (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    receiver.fail_next = 1
    bye = await browser.http.get("/oauth/logout", params={"id_token_hint": id_token})
    assert bye.status_code == 200
    load_job_modules()
    # One pass only: under load a second pass could already find the retry due.
    await Worker(session_factory(), name="test-worker").run_once()
    job = (await db.execute(sa.select(Job).where(Job.kind == BACKCHANNEL_LOGOUT))).scalar_one()
    assert job.status == "pending" and job.attempts == 1 and "500" in (job.last_error or "")
    assert receiver.tokens == []
    clock.advance(timedelta(minutes=5))
    await run_jobs()
    await db.refresh(job)
    assert job.status == "done"
    assert len(receiver.tokens) == 1
