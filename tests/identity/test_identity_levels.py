from __future__ import annotations

import sqlalchemy as sa

from app.core.audit import AuditEvent
from app.identity.models import CitizenIdentity
from app.tokens.models import AuthSession
from tests.conftest import count
from tests.support.flows import bearer, login, make_user, register, seed_wards

IDENTITY = {
    "cccd": "019303001234",
    "full_name": "Nguyễn Thị Bình",
    "date_of_birth": "2003-05-14",
    "gender": "female",
}


async def citizen_of_ward(client, sms_log, phone, ward="TNG-PDP"):
    tokens = await register(client, sms_log, phone)
    response = await client.patch("/api/v1/me", json={"ward_code": ward}, headers=bearer(tokens))
    assert response.status_code == 200, response.text
    return tokens


async def test_declaring_a_consistent_identity_reaches_level_one(client, sms_log, db):
    tokens = await register(client, sms_log, "0912200001")

    response = await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(tokens))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identity_level"] == 1
    assert body["identity"]["cccd"] == "019303001234"  # the owner sees the full number


async def test_cccd_is_encrypted_at_rest_and_found_by_blind_index(client, sms_log, db):
    tokens = await register(client, sms_log, "0912200002")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(tokens))

    row = (await db.execute(sa.select(CitizenIdentity))).scalar_one()
    assert "019303001234" not in row.cccd_encrypted
    assert "019303001234" not in row.cccd_index
    assert row.cccd_last4 == "1234"


async def test_invalid_cccd_is_refused_with_its_reason_in_both_languages(client, sms_log, db):
    tokens = await register(client, sms_log, "0912200003")
    bad = {**IDENTITY, "gender": "male"}

    vi = await client.put("/api/v1/me/identity", json=bad, headers=bearer(tokens))
    en = await client.put(
        "/api/v1/me/identity", json=bad, headers={**bearer(tokens), "Accept-Language": "en"}
    )

    assert vi.status_code == en.status_code == 422
    assert vi.json()["code"] == "identity.invalid_cccd"
    assert vi.json()["reason"] == "gender_mismatch"
    assert "giới tính" in vi.json()["detail"]
    assert "gender digit" in en.json()["detail"]


async def test_the_same_cccd_cannot_back_two_accounts(client, sms_log, db):
    first = await register(client, sms_log, "0912200004")
    second = await register(client, sms_log, "0912200005")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(first))

    response = await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(second))

    assert response.status_code == 409
    assert response.json()["code"] == "identity.cccd_already_used"
    me = (await client.get("/api/v1/me", headers=bearer(second))).json()
    assert me["identity"] is None and me["identity_level"] == 0


async def test_staff_of_the_ward_verify_in_person_to_level_two(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981000001", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981000001")
    citizen = await citizen_of_ward(client, sms_log, "0912200006")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(citizen))
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]

    mismatch = await client.post(
        f"/api/v1/staff/citizens/{citizen_id}/verifications",
        json={"document_kind": "cccd_chip", "cccd": "019303009999"},
        headers=bearer(staff),
    )
    assert mismatch.json()["code"] == "identity.document_mismatch"

    verified = await client.post(
        f"/api/v1/staff/citizens/{citizen_id}/verifications",
        json={
            "document_kind": "cccd_chip",
            "cccd": "019303001234",
            "note": "Đối chiếu thẻ gắn chip tại bộ phận một cửa",
        },
        headers=bearer(staff),
    )
    assert verified.status_code == 201, verified.text
    me = (await client.get("/api/v1/me", headers=bearer(citizen))).json()
    assert me["identity_level"] == 2
    assert me["verification"]["document_kind"] == "cccd_chip"

    revoked = await client.post(
        f"/api/v1/staff/citizens/{citizen_id}/verifications/revoke",
        json={"reason": "Giấy tờ bị báo mất"},
        headers=bearer(staff),
    )
    assert revoked.status_code == 200
    assert revoked.json()["identity_level"] == 1
    actions = {e.action for e in (await db.execute(sa.select(AuditEvent))).scalars()}
    assert {"identity.verified_level2", "identity.level2_revoked"} <= actions


async def test_changing_the_declared_identity_drops_level_two(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981000002", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981000002")
    citizen = await citizen_of_ward(client, sms_log, "0912200007")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(citizen))
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]
    await client.post(
        f"/api/v1/staff/citizens/{citizen_id}/verifications",
        json={"document_kind": "cccd_chip", "cccd": "019303001234"},
        headers=bearer(staff),
    )

    changed = await client.put(
        "/api/v1/me/identity",
        json={**IDENTITY, "full_name": "Nguyễn Thị Bình An"},
        headers=bearer(citizen),
    )

    assert changed.json()["identity_level"] == 1
    assert changed.json()["verification"] is None


async def test_staff_see_the_cccd_masked_and_their_read_is_audited_with_reason(client, sms_log, db):
    await seed_wards(db)
    staff_user = await make_user(db, "0981000003", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981000003")
    citizen = await citizen_of_ward(client, sms_log, "0912200008")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(citizen))

    response = await client.get(
        "/api/v1/staff/citizens",
        params={"phone": "0912200008", "reason": "Tiếp nhận hồ sơ"},
        headers=bearer(staff),
    )

    assert response.status_code == 200, response.text
    assert response.json()["identity"]["cccd"] == "••••••••1234"
    event = (
        await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "identity.staff_read"))
    ).scalar_one()
    assert event.actor_id == staff_user.id
    assert event.reason == "Tiếp nhận hồ sơ"
    assert event.ip == "203.0.113.10"


async def test_staff_of_another_ward_cannot_read_or_change_a_citizen(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981000004", "ward_staff", "TNG-GS")
    await make_user(db, "0981000005", "ward_admin", "TNG-GS")
    outsiders = [await login(client, "0981000004"), await login(client, "0981000005")]
    citizen = await citizen_of_ward(client, sms_log, "0912200009", ward="TNG-PDP")
    await client.put("/api/v1/me/identity", json=IDENTITY, headers=bearer(citizen))
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]

    for staff in outsiders:
        attempts = [
            await client.get(
                f"/api/v1/staff/citizens/{citizen_id}",
                params={"reason": "tò mò"},
                headers=bearer(staff),
            ),
            await client.get(
                "/api/v1/staff/citizens",
                params={"phone": "0912200009", "reason": "tò mò"},
                headers=bearer(staff),
            ),
            await client.post(
                f"/api/v1/staff/citizens/{citizen_id}/verifications",
                json={"document_kind": "cccd_chip", "cccd": "019303001234"},
                headers=bearer(staff),
            ),
            await client.post(
                f"/api/v1/staff/citizens/{citizen_id}/verifications/revoke",
                json={"reason": "không có lý do"},
                headers=bearer(staff),
            ),
        ]
        # 404, not 403: another ward cannot even learn the citizen exists.
        assert [r.status_code for r in attempts] == [404, 404, 404, 404]
    me = (await client.get("/api/v1/me", headers=bearer(citizen))).json()
    assert me["identity_level"] == 1


async def test_city_admin_reaches_citizens_of_every_ward(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981000006", "city_admin")
    admin = await login(client, "0981000006")
    citizen = await citizen_of_ward(client, sms_log, "0912200010", ward="TNG-QT")
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]

    response = await client.get(
        f"/api/v1/staff/citizens/{citizen_id}", params={"reason": "Kiểm tra"}, headers=bearer(admin)
    )

    assert response.status_code == 200


async def test_citizens_and_helpers_cannot_use_staff_endpoints(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981000007", "community_helper", "TNG-PDP")
    helper = await login(client, "0981000007")
    citizen = await citizen_of_ward(client, sms_log, "0912200011")
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]

    for who in (helper, citizen):
        response = await client.get(
            f"/api/v1/staff/citizens/{citizen_id}", params={"reason": "xem"}, headers=bearer(who)
        )
        assert response.status_code == 403
        assert response.json()["code"] == "auth.forbidden"


async def test_staff_reads_need_a_reason(client, sms_log, db):
    await seed_wards(db)
    await make_user(db, "0981000008", "ward_staff", "TNG-PDP")
    staff = await login(client, "0981000008")
    citizen = await citizen_of_ward(client, sms_log, "0912200012")
    citizen_id = (await client.get("/api/v1/me", headers=bearer(citizen))).json()["id"]

    response = await client.get(f"/api/v1/staff/citizens/{citizen_id}", headers=bearer(staff))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.reason"


async def test_community_helper_registers_a_citizen_only_with_the_citizens_code(
    client, sms_log, db
):
    await seed_wards(db)
    helper_user = await make_user(db, "0981000009", "community_helper", "TNG-TL")
    helper = await login(client, "0981000009")

    answer = await register(client, sms_log, "0912200013", headers=bearer(helper))

    # The helper holds no session of the citizen's: no token in the answer, none opened.
    assert answer == {"registered": True, "signed_in": False}
    assert await count(db, AuthSession) == 1  # the helper's own
    tokens = await login(client, "0912200013")  # the citizen, on their own device
    me = (await client.get("/api/v1/me", headers=bearer(tokens))).json()
    assert me["ward_code"] == "TNG-TL"
    event = (
        await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "identity.registered"))
    ).scalar_one()
    assert event.actor_id == helper_user.id
    assert event.details == {"via_helper": True}
    wrong = await client.post(
        "/api/v1/auth/register",
        json={
            "phone": "0912200014",
            "otp": "123456",
            "password": "mot-mat-khau-dai-2026",
            "full_name": "Lê Văn C",
        },
        headers=bearer(helper),
    )
    assert wrong.json()["code"] == "otp.expired"  # no code was ever sent to that number
