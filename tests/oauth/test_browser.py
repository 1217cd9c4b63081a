"""A citizen signs in and consents through the real pages, in Vietnamese, in headless Chromium."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.oauth.support import REDIRECT, make_citizen, make_client, pkce, query_of
from tests.support.flows import PASSWORD

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
async def test_citizen_signs_in_and_consents_in_vietnamese(live_url: str, db: AsyncSession) -> None:
    from playwright.async_api import Route, async_playwright

    await make_citizen(db)
    rp = await make_client(db)
    _verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": rp.client.id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile phone",
        "state": "trinh-duyet",
        "nonce": "n1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": "0912345678",
    }
    landed: list[str] = []
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = await chromium.new_context(locale="vi-VN", java_script_enabled=False)
        page = await context.new_page()

        async def catch_callback(route: Route) -> None:
            landed.append(route.request.url)  # the partner's site is not reachable: stop here
            await route.fulfill(status=200, body="ok")

        await page.route("https://rp.example.vn/**", catch_callback)
        await page.goto(f"{live_url}/oauth/authorize?{urlencode(params)}")
        assert await page.title() == "Đăng nhập Thai Nguyen ID"
        assert await page.input_value("#phone") == "0912345678"  # login_hint
        await page.fill("#password", "sai-mat-khau-roi")
        await page.click("button[type=submit]")
        assert "không đúng" in (await page.inner_text(".error"))
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        assert await page.title() == "Cho phép truy cập"
        body = await page.inner_text("body")
        assert "Ứng dụng Đối tác muốn được:" in body
        assert "Xem số điện thoại" in body
        await page.click("button[value=allow]")
        await page.wait_for_url("https://rp.example.vn/**")
        await chromium.close()
    assert len(landed) == 1
    answer: dict[str, Any] = query_of(landed[0])
    assert answer["state"] == "trinh-duyet"
    assert answer["code"]
