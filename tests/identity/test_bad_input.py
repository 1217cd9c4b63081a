from __future__ import annotations

import pytest

from app.identity.models import User
from tests.conftest import count
from tests.support.flows import bearer, register


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/auth/otp",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/password-reset",
    ],
)
async def test_malformed_json_is_a_clear_400(client, db, path):
    response = await client.post(
        path, content=b'{"phone": "09', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "request.malformed_json"


async def test_missing_fields_are_listed(client, db):
    response = await client.post("/api/v1/auth/register", json={"phone": "0912345678"})

    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"body.otp", "body.password", "body.full_name"} <= fields


async def test_unknown_purpose_is_refused(client, db):
    response = await client.post(
        "/api/v1/auth/otp", json={"phone": "0912345678", "purpose": "spam"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.purpose"


async def test_oversized_body_is_refused_before_anything_is_written(client, db):
    response = await client.post(
        "/api/v1/auth/register",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["code"] == "request.body_too_large"
    assert await count(db, User) == 0


async def test_profile_patch_rejects_unknown_ward_and_null_name(client, sms_log, db):
    tokens = await register(client, sms_log, "0912400001")

    unknown = await client.patch("/api/v1/me", json={"ward_code": "NOPE"}, headers=bearer(tokens))
    null_name = await client.patch("/api/v1/me", json={"full_name": None}, headers=bearer(tokens))

    assert unknown.status_code == 404
    assert unknown.json()["code"] == "admin_units.ward_not_found"
    assert null_name.status_code == 422
    me = (await client.get("/api/v1/me", headers=bearer(tokens))).json()
    assert me["ward_code"] is None and me["full_name"] == "Nguyễn Văn An"


@pytest.mark.parametrize("cccd", ["", "abc", "0190900012345678"])
async def test_garbage_cccd_is_a_problem_not_a_crash(client, sms_log, db, cccd):
    tokens = await register(client, sms_log, "0912400002")

    response = await client.put(
        "/api/v1/me/identity",
        json={"cccd": cccd, "full_name": "A", "date_of_birth": "1990-01-01", "gender": "male"},
        headers=bearer(tokens),
    )

    assert response.status_code == 422
    assert response.json()["code"] in {"identity.invalid_cccd", "request.validation_failed"}
