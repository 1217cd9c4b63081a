from __future__ import annotations

from datetime import timedelta

import pytest

from app.core import clock
from app.identity.models import OtpChallenge, User
from tests.conftest import count
from tests.support.flows import PASSWORD, bearer, last_code, register, request_code, run_jobs


async def test_citizen_registers_with_sms_code_and_reads_profile(client, sms_log, db):
    tokens = await register(client, sms_log, "0912345678", full_name="Trần Thị Bình")

    me = await client.get("/api/v1/me", headers=bearer(tokens))

    assert me.status_code == 200
    body = me.json()
    assert body["phone"] == "+84912345678"
    assert body["full_name"] == "Trần Thị Bình"
    assert body["identity_level"] == 0
    assert body["role"] == "citizen"


async def test_local_and_international_forms_are_one_account(client, sms_log, db):
    await register(client, sms_log, "0912345678")
    clock.advance(timedelta(seconds=61))
    await request_code(client, "+84912345678")  # same answer, but no SMS to a registered number
    await request_code(client, "0912345679")  # an unregistered number, for comparison

    again = await client.post(
        "/api/v1/auth/register",
        json={"phone": "+84 912 345 678", "otp": "000000", "password": PASSWORD, "full_name": "X"},
    )
    unknown = await client.post(
        "/api/v1/auth/register",
        json={"phone": "0912345679", "otp": "000000", "password": PASSWORD, "full_name": "X"},
    )

    # The code is checked first: a registered number answers as an unregistered one does.
    assert (again.status_code, again.json()["code"]) == (400, "otp.invalid")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "otp.invalid")
    assert again.json()["detail"] == unknown.json()["detail"]
    assert await count(db, User) == 1
    signed_in = await client.post(
        "/api/v1/auth/login", json={"phone": "+84 912 345 678", "password": PASSWORD}
    )
    assert signed_in.status_code == 200


async def test_wrong_code_counts_attempts_and_locks_after_five(client, sms_log, db):
    await request_code(client, "0912000001")
    codes = []
    for _ in range(5):
        response = await client.post(
            "/api/v1/auth/register",
            json={
                "phone": "0912000001",
                "otp": "999999" if last_code(sms_log, "+84912000001") != "999999" else "888888",
                "password": PASSWORD,
                "full_name": "A",
            },
        )
        codes.append(response.json()["code"])
    assert codes[:4] == ["otp.invalid"] * 4
    assert codes[4] == "otp.too_many_attempts"

    right = await client.post(
        "/api/v1/auth/register",
        json={
            "phone": "0912000001",
            "otp": last_code(sms_log, "+84912000001"),
            "password": PASSWORD,
            "full_name": "A",
        },
    )
    assert right.json()["code"] == "otp.too_many_attempts"
    assert await count(db, User) == 0


async def test_code_expires_after_five_minutes(client, sms_log, db):
    await request_code(client, "0912000002")
    clock.advance(timedelta(seconds=301))

    response = await client.post(
        "/api/v1/auth/register",
        json={
            "phone": "0912000002",
            "otp": last_code(sms_log, "+84912000002"),
            "password": PASSWORD,
            "full_name": "A",
        },
    )

    assert response.status_code == 400
    assert response.json()["code"] == "otp.expired"


async def test_code_cannot_be_replayed(client, sms_log, db):
    await register(client, sms_log, "0912000003")
    code = last_code(sms_log, "+84912000003")

    response = await client.post(
        "/api/v1/auth/password-reset",
        json={"phone": "0912000003", "otp": code, "new_password": "mat-khau-moi-2026"},
    )

    assert response.json()["code"] == "otp.expired"


async def test_resend_is_refused_within_sixty_seconds(client, sms_log, db):
    await request_code(client, "0912000004")

    again = await client.post(
        "/api/v1/auth/otp", json={"phone": "0912000004", "purpose": "register"}
    )
    assert again.status_code == 429
    assert again.json()["code"] == "otp.resend_too_soon"
    assert int(again.headers["retry-after"]) > 0

    clock.advance(timedelta(seconds=61))
    later = await client.post(
        "/api/v1/auth/otp", json={"phone": "0912000004", "purpose": "register"}
    )
    assert later.status_code == 202


def start_of_next_hour() -> None:
    """Fixed hourly windows: start the test at a window's start so it cannot straddle two."""
    clock.advance(timedelta(seconds=3600 - clock.now().timestamp() % 3600 + 1))


async def test_per_phone_hourly_limit(client, sms_log, db):
    start_of_next_hour()
    statuses = []
    for _ in range(6):
        response = await client.post(
            "/api/v1/auth/otp", json={"phone": "0912000005", "purpose": "register"}
        )
        statuses.append(response.status_code)
        clock.advance(timedelta(seconds=61))
    assert statuses[:5] == [202] * 5
    assert statuses[5] == 429


async def test_per_ip_limit_stops_one_address_spraying_numbers(client, sms_log, db):
    start_of_next_hour()
    statuses = [
        (
            await client.post(
                "/api/v1/auth/otp", json={"phone": f"09120100{i:02d}", "purpose": "register"}
            )
        ).status_code
        for i in range(31)
    ]
    assert statuses[:30] == [202] * 30
    assert statuses[30] == 429
    assert (
        await client.post("/api/v1/auth/otp", json={"phone": "0912010099", "purpose": "register"})
    ).json()["code"] == "request.rate_limited"


@pytest.mark.parametrize("phone", ["12345", "0212345678", "+14155552671", "09123456789012"])
async def test_invalid_phone_is_refused(client, db, phone):
    response = await client.post("/api/v1/auth/otp", json={"phone": phone, "purpose": "register"})
    assert response.status_code == 422
    assert response.json()["code"] == "identity.invalid_phone"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1", "too_short"),
        ("123456789", "common"),
        ("matkhau123", "common"),
        ("a0912000006b", "contains_phone"),
    ],
)
async def test_weak_passwords_are_refused_before_the_code_is_spent(
    client, sms_log, db, password, reason
):
    await request_code(client, "0912000006")
    code = last_code(sms_log, "+84912000006")
    response = await client.post(
        "/api/v1/auth/register",
        json={"phone": "0912000006", "otp": code, "password": password, "full_name": "A"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "identity.weak_password"
    assert response.json()["reason"] == reason
    assert await count(db, User) == 0
    challenge = (await db.execute(OtpChallenge.__table__.select())).first()
    assert challenge.consumed_at is None


async def test_sms_is_sent_only_after_the_request_commits(client, sms_log, db):
    await client.post("/api/v1/auth/otp", json={"phone": "0912000007", "purpose": "register"})
    assert not sms_log.exists()
    await run_jobs()
    assert "0912000007"[1:] in sms_log.read_text()


async def test_reset_code_is_not_sent_to_unknown_number_but_answer_is_the_same(client, sms_log, db):
    response = await client.post(
        "/api/v1/auth/otp", json={"phone": "0912000008", "purpose": "reset_password"}
    )
    await run_jobs()
    assert response.status_code == 202
    assert response.json()["sent_to"].endswith("0008")
    assert not sms_log.exists()
