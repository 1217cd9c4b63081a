"""City admins change, disable, enable and re-key partner applications after registration, through
the admin API and the CLI; every change is audited and takes effect at the protocol endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditEvent
from app.core.config import PROJECT_ROOT
from app.oauth import clients
from app.oauth.models import OAuthClient
from tests.oauth.support import REDIRECT, Browser, base_params, exchange, refresh, userinfo
from tests.support.flows import PASSWORD, login, make_user

pytestmark = pytest.mark.slow

NEW_REDIRECT = "https://rp.example.vn/new-callback"


@pytest.fixture
async def admin_http(live_url: str, db: AsyncSession) -> Any:
    await make_user(db, "0987654321", "city_admin")
    async with httpx.AsyncClient(base_url=live_url) as http:
        token = (await login(http, "0987654321"))["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


async def _actions(db: AsyncSession, client_id: str) -> list[AuditEvent]:
    rows = await db.execute(
        sa.select(AuditEvent)
        .where(AuditEvent.resource == f"oauth_client:{client_id}")
        .order_by(AuditEvent.at)
    )
    return list(rows.scalars())


async def _client_credentials(live_url: str, client_id: str, secret: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )


async def _introspect(live_url: str, by: Any, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/introspect", data={"token": token}, auth=(by.client.id, by.client_secret)
        )
    return dict(answer.json())


async def test_admin_changes_redirect_uris_name_scope_and_level_when_patching(
    live_url: str, rp: Any, admin_http: httpx.AsyncClient, browser: Browser, db: AsyncSession
) -> None:
    answer = await admin_http.patch(
        f"/api/v1/admin/oauth/clients/{rp.client.id}",
        json={
            "name": "Cổng mới",
            "redirect_uris": [NEW_REDIRECT],
            "scope": "openid phone profile",
            "min_loa": 1,
            "backchannel_logout_uri": "https://rp.example.vn/bcl",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (
        body["name"],
        body["redirect_uris"],
        body["scope"],
        body["min_loa"],
        body["backchannel_logout_uri"],
        body["status"],
    ) == (
        "Cổng mới",
        [NEW_REDIRECT],
        "openid phone profile",
        1,
        "https://rp.example.vn/bcl",
        "active",
    )
    assert "client_secret" not in body
    assert body["post_logout_redirect_uris"] == ["https://rp.example.vn/bye"]  # untouched

    _, old = base_params(rp.client.id)
    refused = await browser.authorize(old)
    assert refused.status_code == 400  # the old redirect_uri is no longer registered
    _, new = base_params(rp.client.id, redirect_uri=NEW_REDIRECT)
    assert (await browser.authorize(new)).status_code in (302, 303)

    updated = await _actions(db, rp.client.id)
    assert updated[-1].action == "oauth.client_updated"
    assert updated[-1].details["changed"] == sorted(
        ["name", "redirect_uris", "scope", "min_loa", "backchannel_logout_uri"]
    )
    assert updated[-1].actor_id is not None


async def test_patch_clears_back_channel_logout_with_null_and_refuses_bad_values(
    rp: Any, admin_http: httpx.AsyncClient, db: AsyncSession
) -> None:
    url = f"/api/v1/admin/oauth/clients/{rp.client.id}"
    await admin_http.patch(url, json={"backchannel_logout_uri": "https://rp.example.vn/bcl"})
    cleared = await admin_http.patch(url, json={"backchannel_logout_uri": None})
    assert cleared.json()["backchannel_logout_uri"] is None
    for bad in (
        {"redirect_uris": ["http://rp.example.vn/cb"]},
        {"scope": "profile"},
        {"redirect_uris": []},
        {"name": None},
        {"jwks": {"kty": "EC"}},
    ):
        refused = await admin_http.patch(url, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["code"] in ("oauth.client_invalid", "validation_failed"), bad
    row = await db.get(OAuthClient, rp.client.id, populate_existing=True)
    assert row is not None and row.redirect_uris == [REDIRECT] and row.scope.startswith("openid")


async def test_a_disabled_client_gets_invalid_client_and_its_tokens_stop_working(
    live_url: str, rp: Any, admin_http: httpx.AsyncClient, browser: Browser, db: AsyncSession
) -> None:
    resource_server = await clients.create_client(
        db,
        name="API thành phố",
        redirect_uris=[REDIRECT],
        client_type="confidential",
        auth_method="client_secret_basic",
        first_party=True,
    )
    await db.commit()
    code, verifier, _ = await browser.code_for(rp.client.id)
    user_tokens = (await exchange(live_url, rp, code, verifier)).json()
    machine = (await _client_credentials(live_url, rp.client.id, rp.client_secret)).json()
    assert (await _introspect(live_url, resource_server, machine["access_token"]))["active"]

    disabled = await admin_http.post(
        f"/api/v1/admin/oauth/clients/{rp.client.id}/disable", json={"reason": "lộ khoá"}
    )
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"

    refused = await _client_credentials(live_url, rp.client.id, rp.client_secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert (await refresh(live_url, rp, user_tokens["refresh_token"])).json()[
        "error"
    ] == "invalid_client"
    for token in (
        machine["access_token"],
        user_tokens["access_token"],
        user_tokens["refresh_token"],
    ):
        assert await _introspect(live_url, resource_server, token) == {"active": False}
    assert (await userinfo(live_url, user_tokens["access_token"])).status_code == 401
    _, params = base_params(rp.client.id)
    assert (await browser.authorize(params)).status_code == 400

    enabled = await admin_http.post(f"/api/v1/admin/oauth/clients/{rp.client.id}/enable")
    assert enabled.json()["status"] == "active"
    assert (await _client_credentials(live_url, rp.client.id, rp.client_secret)).status_code == 200
    assert (await _introspect(live_url, resource_server, machine["access_token"]))["active"]
    assert (await refresh(live_url, rp, user_tokens["refresh_token"])).status_code == 200

    actions = [(e.action, e.reason) for e in await _actions(db, rp.client.id)]
    assert ("oauth.client_disabled", "lộ khoá") in actions
    assert ("oauth.client_enabled", None) in actions


async def test_rotating_the_secret_replaces_it_at_once(
    live_url: str, rp: Any, admin_http: httpx.AsyncClient, db: AsyncSession
) -> None:
    assert (
        await _client_credentials(live_url, rp.client.id, rp.client_secret)
    ).status_code == 200  # the old secret, now in the client cache
    rotated = await admin_http.post(f"/api/v1/admin/oauth/clients/{rp.client.id}/secret")
    assert rotated.status_code == 200
    secret = rotated.json()["client_secret"]
    assert secret.startswith("tns_") and secret != rp.client_secret
    assert (await _client_credentials(live_url, rp.client.id, rp.client_secret)).status_code == 401
    assert (await _client_credentials(live_url, rp.client.id, secret)).status_code == 200
    row = await db.get(OAuthClient, rp.client.id, populate_existing=True)
    assert row is not None and secret not in (row.secret_hash or "")
    actions = [e.action for e in await _actions(db, rp.client.id)]
    rotated_at = actions.index("oauth.client_secret_rotated")
    assert actions[:rotated_at] == ["oauth.client_created", "oauth.token_issued"]  # old secret
    assert actions[rotated_at + 1 :] == ["oauth.token_issued"]  # the new secret only


async def test_secret_rotation_is_refused_for_a_client_without_a_secret(
    admin_http: httpx.AsyncClient, db: AsyncSession
) -> None:
    public = await clients.create_client(
        db, name="App", redirect_uris=[REDIRECT], client_type="public", auth_method="none"
    )
    await db.commit()
    refused = await admin_http.post(f"/api/v1/admin/oauth/clients/{public.client.id}/secret")
    assert refused.status_code == 422 and refused.json()["code"] == "oauth.client_invalid"


async def test_only_city_admins_change_clients_and_unknown_ones_are_404(
    live_url: str, rp: Any, admin_http: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_user(db, "0911111111", "citizen")
    async with httpx.AsyncClient(base_url=live_url) as http:
        citizen = (await login(http, "0911111111", PASSWORD))["access_token"]
        for method, path in (("PATCH", ""), ("POST", "/disable"), ("POST", "/secret"), ("GET", "")):
            answer = await http.request(
                method,
                f"/api/v1/admin/oauth/clients/{rp.client.id}{path}",
                json={} if method != "GET" else None,
                headers={"Authorization": f"Bearer {citizen}"},
            )
            assert answer.status_code == 403, (method, path)
    missing = await admin_http.post("/api/v1/admin/oauth/clients/tn_nope/disable")
    assert missing.status_code == 404 and missing.json()["code"] == "oauth.client_not_found"
    listed = await admin_http.get("/api/v1/admin/oauth/clients")
    assert [c["client_id"] for c in listed.json()["items"]] == [rp.client.id]


async def _cli(database_url: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "clients",
        *args,
        "--format",
        "json",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1, (out, err)
    return {"returncode": process.returncode, **json.loads(lines[0])}


async def test_cli_updates_disables_enables_and_rotates_as_json(
    live_url: str,
    database_url: str,
    rp: Any,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI is another process: the server notices within CLIENT_CACHE_SECONDS (here at once).
    monkeypatch.setattr(clients, "CLIENT_CACHE_SECONDS", 0.0)
    updated = await _cli(
        database_url,
        "update",
        rp.client.id,
        "--name",
        "Tên mới",
        "--redirect-uri",
        REDIRECT,
        "--redirect-uri",
        NEW_REDIRECT,
        "--min-loa",
        "2",
        "--backchannel-logout-uri",
        "https://rp.example.vn/b",
    )
    assert updated["returncode"] == 0
    assert (updated["name"], updated["redirect_uris"], updated["min_loa"]) == (
        "Tên mới",
        [REDIRECT, NEW_REDIRECT],
        2,
    )
    assert updated["scope"] == rp.client.scope  # not given, unchanged

    disabled = await _cli(database_url, "disable", rp.client.id, "--reason", "hết hợp đồng")
    assert disabled["status"] == "disabled"
    assert (await _client_credentials(live_url, rp.client.id, rp.client_secret)).status_code == 401
    assert (await _cli(database_url, "enable", rp.client.id))["status"] == "active"

    rotated = await _cli(database_url, "rotate-secret", rp.client.id)
    assert rotated["client_secret"].startswith("tns_")
    assert (await _client_credentials(live_url, rp.client.id, rp.client_secret)).status_code == 401
    assert (
        await _client_credentials(live_url, rp.client.id, rotated["client_secret"])
    ).status_code == 200

    missing = await _cli(database_url, "disable", "tn_nope")
    assert (missing["returncode"], missing["error"]) == (1, "oauth.client_not_found")
    bad = await _cli(database_url, "update", rp.client.id, "--scope", "profile")
    assert (bad["returncode"], bad["error"]) == (1, "oauth.client_invalid")
    actions = [e.action for e in await _actions(db, rp.client.id)]
    for action in (
        "oauth.client_updated",
        "oauth.client_disabled",
        "oauth.client_enabled",
        "oauth.client_secret_rotated",
    ):
        assert action in actions
