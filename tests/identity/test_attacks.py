"""Attacks on Thai Nguyen ID's sign-up, sign-in and identity claims, each shown defeated.

Races run twice: in-process on both databases (concurrent requests over several connections),
and on PostgreSQL against two server processes (`two_server_processes`), as in production.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from app.core import clock
from app.core.audit import AuditEvent
from app.core.jobs import Job
from app.identity.config import get_identity_settings
from app.identity.models import CitizenIdentity, OtpChallenge, User
from app.identity.service import SEND_SMS
from app.tokens.models import AuthSession
from tests.conftest import count
from tests.support.flows import (
    PASSWORD,
    bearer,
    last_code,
    login,
    make_user,
    register,
    request_code,
    run_jobs,
    seed_wards,
)
from tests.support.servers import forwarded_for, two_server_processes
from tests.support.statements import statements

NEW_PASSWORD = "mat-khau-moi-rat-dai-2026"
NO_CHECK_LIMITS = {
    "OTP_CHECKS_PER_PHONE_PER_HOUR": "100000",
    "OTP_CHECKS_PER_IP_PER_HOUR": "100000",
    "LOGIN_PER_IP_PER_MINUTE": "100000",
}


def e164(phone: str) -> str:
    return "+84" + phone.lstrip("0")


def answers(responses: Iterable[httpx.Response]) -> Counter[str]:
    return Counter(
        str(r.status_code) if r.status_code < 300 else r.json()["code"] for r in responses
    )


async def reset_code_for_registered(client: httpx.AsyncClient, sms_log, phone: str) -> str:
    await register(client, sms_log, phone)
    clock.advance(timedelta(seconds=61))
    await request_code(client, phone, "reset_password")
    return last_code(sms_log, e164(phone))


def guesses_around(code: str, total: int) -> list[str]:
    """`total - 1` wrong codes with the real one in the middle of them."""
    wrong = [f"{(int(code) + n + 1) % 1_000_000:06d}" for n in range(total - 1)]
    return [*wrong[: total // 2], code, *wrong[total // 2 :]]


async def reset_burst(
    http: httpx.AsyncClient, phone: str, guesses: list[str]
) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            http.post(
                "/api/v1/auth/password-reset",
                headers=forwarded_for(n),
                json={"phone": phone, "otp": guess, "new_password": NEW_PASSWORD},
            )
            for n, guess in enumerate(guesses)
        )
    )


async def attempts_of(db, phone: str) -> int:
    db.expire_all()
    return (
        await db.execute(
            sa.select(OtpChallenge.attempts).where(
                OtpChallenge.phone == e164(phone), OtpChallenge.purpose == "reset_password"
            )
        )
    ).scalar_one()


def assert_at_most_five_codes_compared(seen: Counter[str], attempts: int) -> None:
    # Every answer that says something about the code (wrong, or right) is one of the five
    # attempts; every other guess was refused before any comparison.
    assert "500" not in str(seen), seen
    assert attempts == get_identity_settings().otp_max_attempts
    assert seen["otp.invalid"] + seen["204"] <= attempts, seen
    assert seen["otp.invalid"] <= attempts - 1, seen


# ---------------------------------------------------------------- OTP attempts


async def test_fifty_concurrent_guesses_compare_at_most_five_codes(
    client, sms_log, db, monkeypatch
):
    for name in ("otp_checks_per_phone_per_hour", "otp_checks_per_ip_per_hour"):
        monkeypatch.setattr(get_identity_settings(), name, 100_000)  # only the per-code limit left
    code = await reset_code_for_registered(client, sms_log, "0912300001")

    seen = answers(await reset_burst(client, "0912300001", guesses_around(code, 50)))

    assert_at_most_five_codes_compared(seen, await attempts_of(db, "0912300001"))


async def test_fifty_guesses_across_two_servers_compare_at_most_five_codes(
    client, sms_log, db, backend
):
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    code = await reset_code_for_registered(client, sms_log, "0912300002")

    with two_server_processes(NO_CHECK_LIMITS) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            seen = answers(await reset_burst(http, "0912300002", guesses_around(code, 50)))

    assert_at_most_five_codes_compared(seen, await attempts_of(db, "0912300002"))
    if seen["204"] == 0:  # the real code came after the limit: the account is untouched
        assert (
            await client.post(
                "/api/v1/auth/login", json={"phone": "0912300002", "password": PASSWORD}
            )
        ).status_code == 200


async def test_code_checks_are_limited_per_phone_across_fresh_codes(
    client, sms_log, db, monkeypatch
):
    monkeypatch.setattr(get_identity_settings(), "otp_per_phone_per_hour", 100)  # codes, not checks
    # The limits count in fixed hours: the ten minutes below must not straddle two of them.
    clock.advance(timedelta(seconds=3600 - clock.now().timestamp() % 3600 + 1))
    await register(client, sms_log, "0912300003")
    limit = get_identity_settings().otp_checks_per_phone_per_hour
    codes = []
    for n in range(limit):  # a fresh code (5 attempts each) does not buy more guesses
        clock.advance(timedelta(seconds=61))
        await request_code(client, "0912300003", "reset_password")
        response = await client.post(
            "/api/v1/auth/password-reset",
            headers=forwarded_for(n),
            json={"phone": "0912300003", "otp": "000000", "new_password": NEW_PASSWORD},
        )
        codes.append(response.json()["code"])
    # The registration's own check was the first of the hour's `limit`.
    assert codes == ["otp.invalid"] * (limit - 1) + ["request.rate_limited"]


async def test_code_checks_are_limited_per_address_across_phones(client, sms_log, db, monkeypatch):
    monkeypatch.setattr(get_identity_settings(), "otp_checks_per_ip_per_hour", 3)
    codes = []
    for n in range(4):
        phone = f"091230010{n}"
        await request_code(client, phone)
        response = await client.post(
            "/api/v1/auth/register",
            json={"phone": phone, "otp": "000000", "password": PASSWORD, "full_name": "A"},
        )
        codes.append(response.json()["code"])
    assert codes == ["otp.invalid"] * 3 + ["request.rate_limited"]


async def test_the_code_is_never_stored_in_clear_in_the_outbox(client, sms_log, db):
    await request_code(client, "0912300004")
    code = last_code(sms_log, e164("0912300004"))

    job = (await db.execute(sa.select(Job).where(Job.kind == SEND_SMS))).scalar_one()
    assert code not in json.dumps(job.payload)
    assert job.payload["to"] == e164("0912300004")


# ---------------------------------------------------------------- login lock-out


async def login_burst(http: httpx.AsyncClient, phone: str, total: int) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            http.post(
                "/api/v1/auth/login",
                headers=forwarded_for(n),
                json={"phone": phone, "password": f"doan-sai-mat-khau-{n}"},
            )
            for n in range(total)
        )
    )


async def assert_locked_after_free_failures(client, db, phone: str, seen: Counter[str]) -> None:
    free = get_identity_settings().login_free_failures
    assert seen == {"auth.invalid_credentials": free, "auth.account_locked": 40 - free}, seen
    db.expire_all()
    user = (await db.execute(sa.select(User).where(User.phone == e164(phone)))).scalar_one()
    assert user.failed_logins == free
    assert user.locked_until is not None and user.locked_until > clock.now()
    # The right password is refused while locked: the campaign cannot learn it meanwhile.
    right = await client.post("/api/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    assert right.json()["code"] == "auth.account_locked"


async def test_forty_concurrent_wrong_passwords_from_forty_addresses_lock_the_account(
    client, sms_log, db
):
    await register(client, sms_log, "0912300011")

    seen = answers(await login_burst(client, "0912300011", 40))

    await assert_locked_after_free_failures(client, db, "0912300011", seen)


async def test_distributed_guessing_across_two_servers_locks_the_account(
    client, sms_log, db, backend
):
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    await register(client, sms_log, "0912300012")

    with two_server_processes(NO_CHECK_LIMITS) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            seen = answers(await login_burst(http, "0912300012", 40))

    await assert_locked_after_free_failures(client, db, "0912300012", seen)


async def test_a_lock_never_outlasts_its_cap_nor_a_password_reset(client, sms_log, db):
    await register(client, sms_log, "0912300013")
    await login_burst(client, "0912300013", 40)
    for _ in range(5):  # a campaign that keeps coming back after every lock
        clock.advance(timedelta(minutes=16))
        await login_burst(client, "0912300013", 40)

    user = (await db.execute(sa.select(User).where(User.phone == e164("0912300013")))).scalar_one()
    cap = timedelta(seconds=get_identity_settings().login_lock_max_seconds)
    assert user.locked_until is not None and user.locked_until - clock.now() <= cap
    clock.advance(cap + timedelta(seconds=1))
    assert (
        await client.post("/api/v1/auth/login", json={"phone": "0912300013", "password": PASSWORD})
    ).status_code == 200


# ---------------------------------------------------------------- enumeration


async def probe(client: httpx.AsyncClient, phone: str) -> list[tuple[int, str | None, str]]:
    """What an enumerator sees for a number: the code request twice, a register and a reset
    with a guessed code; and which statements the server ran for them."""
    seen = []
    with statements() as ran:
        for _ in range(2):
            response = await client.post(
                "/api/v1/auth/otp", json={"phone": phone, "purpose": "register"}
            )
            seen.append(
                (
                    response.status_code,
                    response.json().get("code"),
                    str(response.json().get("resend_after", "")),
                )
            )
        for path, body in (
            ("register", {"password": PASSWORD, "full_name": "A"}),
            ("password-reset", {"new_password": NEW_PASSWORD}),
        ):
            response = await client.post(
                f"/api/v1/auth/{path}", json={"phone": phone, "otp": "000000", **body}
            )
            seen.append(
                (
                    response.status_code,
                    response.json().get("code"),
                    response.json().get("detail", ""),
                )
            )
    shapes = Counter(" ".join(statement.split()[:3]) for statement in ran)
    return seen + sorted((0, None, f"{shape} x{n}") for shape, n in shapes.items())


async def test_registered_and_unknown_numbers_answer_alike(client, sms_log, db):
    await register(client, sms_log, "0912300021")
    clock.advance(timedelta(seconds=61))

    registered = await probe(client, "0912300021")
    unknown = await probe(client, "0912300022")

    assert registered == unknown
    assert [code for _, code, _ in registered[:4]] == [
        None,
        "otp.resend_too_soon",
        "otp.invalid",
        "otp.expired",  # no reset code was asked for
    ]
    await run_jobs()  # and no SMS reaches the registered number for a registration
    assert [json.loads(line)["to"] for line in sms_log.read_text().splitlines()].count(
        e164("0912300021")
    ) == 1


# ---------------------------------------------------------------- assisted registration


async def test_community_helper_never_holds_the_citizens_session(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981300001", "community_helper", "TNG-TL")
    helper = await login(client, "0981300001")

    answer = await register(client, sms_log, "0912300031", headers=bearer(helper))

    assert "access_token" not in answer and "refresh_token" not in answer
    citizen = (
        await db.execute(sa.select(User).where(User.phone == e164("0912300031")))
    ).scalar_one()
    assert await count(db, AuthSession) == 1  # the helper's own session only
    assert (
        await db.execute(sa.select(AuthSession).where(AuthSession.user_id == citizen.id))
    ).first() is None


# ---------------------------------------------------------------- caching of tokens


async def test_answers_carrying_tokens_or_personal_data_are_never_cached(client, sms_log, db):
    await request_code(client, "0912300041")
    registered = await client.post(
        "/api/v1/auth/register",
        json={
            "phone": "0912300041",
            "otp": last_code(sms_log, e164("0912300041")),
            "password": PASSWORD,
            "full_name": "A",
        },
    )
    signed_in = await client.post(
        "/api/v1/auth/login", json={"phone": "0912300041", "password": PASSWORD}
    )
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}
    )
    exported = await client.get("/api/v1/me/export", headers=bearer(signed_in.json()))

    for response in (registered, signed_in, refreshed, exported):
        assert response.status_code in (200, 201), response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


# ---------------------------------------------------------------- CCCD squatting


OWNER_IDENTITY = {
    "cccd": "019303001234",
    "full_name": "Nguyễn Thị Bình",
    "date_of_birth": "2003-04-05",
    "gender": "female",
}


async def test_a_squatted_cccd_goes_to_its_holder_at_the_ward(client, sms_log, db):
    await seed_wards(db)
    squatter = await register(client, sms_log, "0912300051")
    owner = await register(client, sms_log, "0912300052")
    await client.put("/api/v1/me/identity", json=OWNER_IDENTITY, headers=bearer(squatter))

    refused = await client.put(
        "/api/v1/me/identity",
        json=OWNER_IDENTITY,
        headers={**bearer(owner), "Accept-Language": "vi"},
    )
    assert refused.json()["code"] == "identity.cccd_already_used"
    assert "UBND phường/xã" in refused.json()["detail"]  # the way to settle it

    owner_user = (
        await db.execute(sa.select(User).where(User.phone == e164("0912300052")))
    ).scalar_one()
    owner_user.ward_code = "TNG-PDP"
    await db.commit()
    await make_user(db, "0981300002", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981300002")
    document = {k: v for k, v in OWNER_IDENTITY.items() if k != "cccd"}
    verified = await client.post(
        f"/api/v1/staff/citizens/{owner_user.id}/verifications",
        headers=bearer(staff),
        json={"document_kind": "cccd_chip", "cccd": OWNER_IDENTITY["cccd"], "document": document},
    )
    assert verified.status_code == 201, verified.text

    me = (await client.get("/api/v1/me", headers=bearer(owner))).json()
    assert (me["identity_level"], me["identity"]["cccd"]) == (2, OWNER_IDENTITY["cccd"])
    squatted = (await client.get("/api/v1/me", headers=bearer(squatter))).json()
    assert (squatted["identity_level"], squatted["identity"]) == (0, None)
    assert await count(db, CitizenIdentity) == 1
    released = (
        await db.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "identity.cccd_claim_released")
        )
    ).scalar_one()
    assert str(released.subject_id) == squatted["id"]


async def test_cccd_declarations_are_limited_so_numbers_cannot_be_enumerated(client, sms_log, db):
    prober = await register(client, sms_log, "0912300061")
    limit = get_identity_settings().cccd_declarations_per_account_per_day
    codes = []
    for n in range(limit + 1):
        number = f"0193030{n:05d}"
        response = await client.put(
            "/api/v1/me/identity", headers=bearer(prober), json={**OWNER_IDENTITY, "cccd": number}
        )
        codes.append(response.json().get("code"))
    assert codes[-1] == "request.rate_limited"
    assert "request.rate_limited" not in codes[:-1]


# ---------------------------------------------------------------- limits under concurrency


async def test_a_rate_limit_admits_exactly_its_limit_across_two_servers(client, db, backend):
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    limit = get_identity_settings().otp_per_ip_per_hour
    one_address = {"X-Forwarded-For": "198.51.100.77"}

    with two_server_processes() as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/auth/otp",
                        headers=one_address,
                        json={"phone": f"09124{n:05d}", "purpose": "register"},
                    )
                    for n in range(2 * limit)
                )
            )

    assert answers(responses) == {"202": limit, "request.rate_limited": limit}
    assert await count(db, OtpChallenge) == limit


async def test_a_code_used_at_once_from_two_servers_works_once(client, sms_log, db, backend):
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    code = await reset_code_for_registered(client, sms_log, "0912300071")

    with two_server_processes() as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            seen = answers(await reset_burst(http, "0912300071", [code] * 5))

    assert seen["204"] == 1, seen
    assert set(seen) <= {"204", "otp.expired", "otp.too_many_attempts"}, seen
