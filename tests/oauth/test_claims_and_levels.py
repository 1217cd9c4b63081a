"""Scopes and claims (pairwise and public subjects, cccd only where allowed) and identity levels
as `acr` values with a client's minimum."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditContext
from app.identity import service as identity
from app.identity.models import User
from tests.oauth.support import (
    Browser,
    base_params,
    exchange,
    id_token_claims,
    make_client,
    query_of,
    userinfo,
)

pytestmark = pytest.mark.slow
CCCD = "019190123456"  # Thái Nguyên, female born 1990


async def citizen(db: AsyncSession) -> User:
    return (await db.execute(sa.select(User).where(User.phone == "+84912345678"))).scalar_one()


async def declare(db: AsyncSession) -> None:
    await identity.declare_identity(
        db,
        await citizen(db),
        cccd=CCCD,
        full_name="Nguyễn Thị Lan",
        date_of_birth=date(1990, 3, 8),
        gender="female",
        ctx=AuditContext(),
    )
    await db.commit()


async def claims_via(
    live_url: str, rp: Any, browser: Browser, scope: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    code, verifier, _ = await browser.code_for(rp.client.id, scope=scope)
    body = (await exchange(live_url, rp, code, verifier)).json()
    info = await userinfo(live_url, body["access_token"])
    assert info.status_code == 200, info.text
    return info.json(), await id_token_claims(live_url, body["id_token"])


async def test_a_declared_cccd_is_withheld_until_staff_verify_it_at_level_2(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    """A CCCD declared (level 1) may be someone else's number: partners get it only at level 2."""
    rp = await make_client(db, scope="openid profile cccd", allow_cccd=True)
    await declare(db)
    info, id_claims = await claims_via(live_url, rp, browser, "openid profile cccd")
    assert "cccd" not in info
    assert info["birthdate"] == "1990-03-08" and info["gender"] == "female"
    assert id_claims["acr"] == "urn:thainguyen:id:loa:1"
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(identity_level=2))
    await db.commit()
    info, id_claims = await claims_via(live_url, rp, browser, "openid profile cccd")
    assert info["cccd"] == CCCD
    assert id_claims["acr"] == "urn:thainguyen:id:loa:2"


async def test_cccd_is_withheld_below_level_1(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, scope="openid profile cccd", allow_cccd=True)
    info, _ = await claims_via(live_url, rp, browser, "openid profile cccd")
    assert "cccd" not in info


async def test_cccd_is_never_released_to_a_client_not_allowed_it(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, scope="openid profile cccd", allow_cccd=False)
    await declare(db)
    info, _ = await claims_via(live_url, rp, browser, "openid profile cccd")
    assert "cccd" not in info
    assert info["name"] == "Nguyễn Thị Lan"


async def test_scope_decides_the_claims(live_url: str, browser: Browser, db: AsyncSession) -> None:
    rp = await make_client(db)
    info, _ = await claims_via(live_url, rp, browser, "openid")
    assert set(info) == {"sub"}


async def test_first_party_clients_get_the_public_sub_without_a_consent_page(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, first_party=True)
    _, params = base_params(rp.client.id)
    final = await browser.follow_until_client(await browser.authorize(params), consent=None)
    assert final.status_code == 302  # no consent page was needed
    code = query_of(final.headers["location"])["code"]
    verifier = params["__verifier"]
    body = (await exchange(live_url, rp, code, verifier)).json()
    sub = (await id_token_claims(live_url, body["id_token"]))["sub"]
    assert sub == str((await citizen(db)).id)


async def test_a_citizen_below_the_client_minimum_is_told_how_and_the_rp_gets_an_error(
    browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, min_loa=2)
    _, params = base_params(rp.client.id)
    page = await browser.follow_until_client(await browser.authorize(params))
    assert page.status_code == 403
    assert "mức 2" in page.text and "một cửa" in page.text  # how to reach level 2
    back = query_of(page.text.split('class="button" href="')[1].split('"')[0].replace("&amp;", "&"))
    assert back["error"] == "unmet_authentication_requirements"
    assert back["state"] == params["state"]
    assert "code" not in back


async def test_acr_values_raise_the_level_asked_for(browser: Browser, db: AsyncSession) -> None:
    rp = await make_client(db)
    await browser.code_for(rp.client.id)  # signed in and consented at level 0
    _, params = base_params(
        rp.client.id, prompt="none", acr_values="urn:thainguyen:id:loa:1 urn:thainguyen:id:loa:2"
    )
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert answer["error"] == "unmet_authentication_requirements"


async def test_a_level_2_citizen_meets_a_level_2_client(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, min_loa=2)
    await declare(db)
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(identity_level=2))
    await db.commit()
    _, id_claims = await claims_via(live_url, rp, browser, "openid")
    assert id_claims["acr"] == "urn:thainguyen:id:loa:2"


async def test_address_scope_gives_ward_and_province(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    from app.admin_units.data import WARDS
    from tests.support.flows import seed_wards

    await seed_wards(db)
    ward = WARDS[0]
    await db.execute(
        sa.update(User).where(User.phone == "+84912345678").values(ward_code=ward.code)
    )
    await db.commit()
    rp = await make_client(db)
    info, _ = await claims_via(live_url, rp, browser, "openid address")
    assert info["address"]["locality"] == ward.name
    assert info["address"]["region"] == "Tỉnh Thái Nguyên"
    assert info["address"]["country"] == "VN"
    assert "phone_number" not in info and "name" not in info
