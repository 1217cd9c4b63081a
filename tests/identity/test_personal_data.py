from __future__ import annotations

import json
import uuid

import httpx
import sqlalchemy as sa

from app.core.audit import AuditEvent
from app.identity.models import CitizenIdentity, ConsentRecord, User
from app.tokens.models import AuthSession
from tests.support.flows import PASSWORD, bearer, login, make_user, register, seed_wards

IDENTITY = {
    "cccd": "019090001234",
    "full_name": "Phạm Văn Dũng",
    "date_of_birth": "1990-03-01",
    "gender": "male",
}


async def test_registration_records_consent_with_the_policy_version(client, sms_log, db):
    await register(client, sms_log, "0912300001")

    consent = (await db.execute(sa.select(ConsentRecord))).scalar_one()

    assert consent.policy_version == "2026-01"
    assert consent.withdrawn_at is None


async def test_export_holds_everything_about_the_caller(client, sms_log, db):
    tokens = await register(client, sms_log, "0912300002")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(tokens))

    response = await client.get("/api/v1/me/export", headers=bearer(tokens))

    assert response.status_code == 200
    account = response.json()["account"]
    assert account["profile"]["phone"] == "+84912300002"
    assert "password_hash" not in account["profile"]
    assert account["identity"]["cccd"] == "019090001234"
    assert account["consents"][0]["policy_version"] == "2026-01"
    assert len(account["sessions"]) == 1
    assert {"identity.registered", "identity.declared"} <= {
        e["action"] for e in account["audit_log"]
    }


async def test_deleting_the_account_erases_personal_data_and_says_what_is_kept(client, sms_log, db):
    tokens = await register(client, sms_log, "0912300003")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(tokens))

    wrong = await client.request(
        "DELETE", "/api/v1/me", json={"password": "khong-dung-1"}, headers=bearer(tokens)
    )
    assert wrong.status_code == 403
    response = await client.request(
        "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=bearer(tokens)
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["deleted"] is True
    assert {r["data"] for r in report["retained"]} == {"audit_log", "consent_records"}
    user = (await db.execute(sa.select(User))).scalar_one()
    assert (user.phone, user.full_name, user.password_hash, user.status) == (
        None,
        None,
        None,
        "deleted",
    )
    assert (await db.execute(sa.select(CitizenIdentity))).first() is None
    assert (await db.execute(sa.select(AuthSession))).first() is None
    assert (
        await db.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "identity.account_deleted")
        )
    ).scalar_one()
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 401


async def test_an_erased_number_can_register_again_and_the_cccd_is_free(client, sms_log, db):
    tokens = await register(client, sms_log, "0912300004")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(tokens))
    await client.request(
        "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=bearer(tokens)
    )

    again = await register(client, sms_log, "0912300004")
    declared = await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(again))

    assert declared.status_code == 200


async def test_staff_accounts_cannot_delete_themselves(client, sms_log, db):
    from tests.support.flows import make_user, seed_wards

    await seed_wards(db)
    await make_user(db, "0981000011", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981000011")

    response = await client.request(
        "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=bearer(staff)
    )

    assert response.status_code == 409
    assert response.json()["code"] == "identity.staff_account_cannot_self_delete"


async def test_export_names_no_staff_member_who_acted_on_the_citizen(app, client, sms_log, db):
    await seed_wards(db)
    staff_user = await make_user(db, "0981300009", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981300009")
    citizen = await register(client, sms_log, "0912300009")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(citizen))
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]
    user = await db.get(User, uuid.UUID(citizen_id))
    user.ward_code = "TNG-PDP"
    await db.commit()
    transport = httpx.ASGITransport(app=app, client=("10.20.30.40", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as office:
        read = await office.get(
            f"/api/v1/staff/citizens/{citizen_id}",
            params={"reason": "Xác thực tại quầy"},
            headers=bearer(staff),
        )
        verified = await office.post(
            f"/api/v1/staff/citizens/{citizen_id}/verifications",
            json={"document_kind": "cccd_chip", "cccd": IDENTITY["cccd"]},
            headers=bearer(staff),
        )
    assert (read.status_code, verified.status_code) == (200, 201), verified.text

    export = (await client.get("/api/v1/me/export", headers=bearer(citizen))).json()

    everything = json.dumps(export)
    assert "10.20.30.40" not in everything and str(staff_user.id) not in everything
    account = export["account"]
    assert account["identity_verifications"][0]["ward_code"] == "TNG-PDP"
    assert {"identity.staff_read", "identity.verified_level2"} <= {
        e["action"] for e in account["audit_log"]
    }
