"""Citizens submit, follow, supplement, withdraw and rate dossiers; bad input leaves nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.jobs import Job
from app.dossiers.config import get_dossier_settings
from app.dossiers.models import Dossier, DossierCounter, DossierDocument, DossierIdempotencyKey
from tests.conftest import count
from tests.support.dossiers import (
    Person,
    birth_body,
    birth_form,
    idem,
    pdf_bytes,
    png_bytes,
    travel_to,
    upload,
    upload_pdf,
)

DOSSIERS = "/api/v1/dossiers"


async def submit(
    client: httpx.AsyncClient, who: Person, body: dict, key: str | None = None
) -> httpx.Response:
    headers = {**who.headers, "Idempotency-Key": key} if key else idem(who.headers)
    return await client.post(DOSSIERS, json=body, headers=headers)


async def test_submission_gets_a_daily_code_per_receiving_ward(
    client: httpx.AsyncClient, citizen: Person, db: AsyncSession
) -> None:
    await travel_to(client, datetime(2027, 2, 2, 9, 0), citizen)
    media_id = await upload_pdf(client, citizen.headers)
    first = await submit(client, citizen, birth_body(media_id))
    second = await submit(client, citizen, birth_body(media_id))
    other_ward = await submit(client, citizen, birth_body(media_id, ward="TNG-GS"))
    assert first.status_code == 201, first.text
    assert first.json()["code"] == "TNG-PDP-270202-0001"
    assert second.json()["code"] == "TNG-PDP-270202-0002"
    assert other_ward.json()["code"] == "TNG-GS-270202-0001"
    # A new local day starts a new sequence.
    await travel_to(client, datetime(2027, 2, 3, 0, 5), citizen)
    assert (await submit(client, citizen, birth_body(media_id))).json()[
        "code"
    ] == "TNG-PDP-270203-0001"
    body = first.json()
    assert body["status"] == "submitted" and body["agency_code"] == "TNG-PDP"
    assert body["documents"][0]["document_code"] == "giay_chung_sinh"
    assert [e["action"] for e in body["timeline"]] == ["submit"]
    assert body["allowed_actions"] == ["withdraw"]


async def test_the_answer_to_a_submission_is_the_dossier_as_read_back(
    client: httpx.AsyncClient, citizen: Person
) -> None:
    """The submission's answer is built from what the request wrote, not read back: it must
    be exactly what a later read shows (two documents, English labels)."""
    media_id = await upload_pdf(client, citizen.headers)
    proxy = await upload(client, citizen.headers, png_bytes(), "uy-quyen.png", "image/png")
    body = birth_body(media_id)
    body["documents"].append({"document_code": "van_ban_uy_quyen", "media_id": proxy.json()["id"]})
    english = {**citizen.headers, "Accept-Language": "en"}
    created = await client.post(DOSSIERS, json=body, headers=idem(english))
    assert created.status_code == 201, created.text
    read = await client.get(f"{DOSSIERS}/{created.json()['code']}", headers=english)
    assert created.json() == read.json()
    assert [d["document_code"] for d in read.json()["documents"]] == [
        "giay_chung_sinh",
        "van_ban_uy_quyen",
    ]
    assert read.json()["timeline"][0]["label"] == "Submitted online"


async def test_province_level_procedure_goes_to_the_province_queue(
    client: httpx.AsyncClient, citizen: Person
) -> None:
    await travel_to(client, datetime(2027, 3, 1, 9, 0), citizen)
    photo = await upload(client, citizen.headers, png_bytes(), "cccd.png", "image/png")
    body = {
        "procedure_code": "2.000488",
        "ward_code": "TNG-PDP",
        "form": {
            "person": {"full_name": "Trần Thị Mai", "cccd": "019190000123"},
            "certificate_type": 1,
            "purpose": "Xin việc",
        },
        "documents": [{"document_code": "cccd", "media_id": photo.json()["id"]}],
    }
    response = await submit(client, citizen, body)
    assert response.status_code == 201, response.text
    assert response.json()["agency_code"] == "TNG"
    assert response.json()["code"] == "TNG-270301-0001"


async def test_retry_with_the_same_idempotency_key_returns_the_same_dossier(
    client: httpx.AsyncClient, citizen: Person, db: AsyncSession
) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    first = await submit(client, citizen, birth_body(media_id), key="key-0001-abcdef")
    again = await submit(client, citizen, birth_body(media_id), key="key-0001-abcdef")
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["code"] == first.json()["code"]
    assert await count(db, Dossier) == 1
    jobs = (await db.execute(sa.select(Job).where(Job.kind == "dossier.status_changed"))).all()
    assert len(jobs) == 1

    changed = birth_body(media_id)
    changed["form"]["child"]["full_name"] = "Nguyễn Minh Khang"
    reused = await submit(client, citizen, changed, key="key-0001-abcdef")
    assert reused.status_code == 422
    assert reused.json()["code"] == "dossier.idempotency_key_reused"
    assert await count(db, Dossier) == 1
    # The key is the citizen's own: another citizen may use the same string.
    bad = await submit(client, citizen, birth_body(media_id), key="short")
    assert bad.json()["code"] == "dossier.idempotency_key_invalid"
    missing = await client.post(DOSSIERS, json=birth_body(media_id), headers=citizen.headers)
    assert missing.status_code == 400
    assert missing.json()["code"] == "dossier.idempotency_key_required"
    assert await count(db, Dossier) == 1


async def test_form_that_breaks_the_schema_gets_field_errors_and_writes_nothing(
    client: httpx.AsyncClient, citizen: Person, db: AsyncSession
) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    body = birth_body(media_id)
    body["form"] = birth_form(date_of_birth="20/01/2027", gender="boy")
    del body["form"]["mother"]
    body["form"]["unexpected"] = 1
    response = await submit(client, citizen, body, key="form-invalid-1")
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "dossier.form_invalid"
    fields = {(e["field"], e["code"]) for e in problem["errors"]}
    assert ("form.child.date_of_birth", "format") in fields
    assert ("form.child.gender", "enum") in fields
    assert ("form.mother", "required") in fields
    assert ("form", "additionalProperties") in fields
    assert await count(db, Dossier) == 0
    assert await count(db, DossierCounter) == 0
    assert await count(db, DossierIdempotencyKey) == 0  # the key may be used again
    assert await count(db, Job) == 0


@pytest.mark.parametrize("case", ["missing", "unknown_kind", "wrong_type", "not_mine", "no_such"])
async def test_bad_documents_are_refused_with_their_own_code(
    client: httpx.AsyncClient,
    citizen: Person,
    other_citizen: Person,
    db: AsyncSession,
    case: str,
) -> None:
    mine = await upload_pdf(client, citizen.headers)
    theirs = await upload_pdf(client, other_citizen.headers)
    png = (await upload(client, citizen.headers, png_bytes(), "a.png", "image/png")).json()["id"]
    body = birth_body(mine)
    expected = {
        "missing": "dossier.document_missing",
        "unknown_kind": "dossier.document_unknown",
        "wrong_type": "dossier.document_type_not_accepted",
        "not_mine": "dossier.attachment_not_found",
        "no_such": "dossier.attachment_not_found",
    }[case]
    if case == "missing":
        body["documents"] = []
    elif case == "unknown_kind":
        body["documents"][0]["document_code"] = "ho_chieu"
    elif case == "wrong_type":  # signature certification takes PDF only
        body = {
            "procedure_code": "2.000884",
            "ward_code": "TNG-PDP",
            "form": {
                "signer": {"full_name": "Trần Thị Mai", "cccd": "019190000123"},
                "document_title": "Giấy ủy quyền",
            },
            "documents": [{"document_code": "van_ban", "media_id": png}],
        }
    elif case == "not_mine":
        body["documents"][0]["media_id"] = theirs
    else:
        body["documents"][0]["media_id"] = "01900000-0000-7000-8000-000000000000"
    response = await submit(client, citizen, body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == expected
    assert await count(db, Dossier) == 0
    assert await count(db, DossierDocument) == 0


async def test_document_over_the_procedure_size_is_refused(
    client: httpx.AsyncClient, citizen: Person, db: AsyncSession
) -> None:
    big = await upload(client, citizen.headers, pdf_bytes(5 * 1024 * 1024 + 10))
    assert big.status_code == 201
    response = await submit(client, citizen, birth_body(big.json()["id"]))
    assert response.status_code == 422
    assert response.json()["code"] == "dossier.document_too_large"
    assert await count(db, Dossier) == 0


async def test_unknown_ward_or_procedure(client: httpx.AsyncClient, citizen: Person) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    ward = await submit(client, citizen, birth_body(media_id, ward="TNG-XX"))
    assert ward.status_code == 422 and ward.json()["code"] == "dossier.agency_invalid"
    province = await submit(client, citizen, birth_body(media_id, ward="TNG"))
    assert province.json()["code"] == "dossier.agency_invalid"
    proc = await submit(client, citizen, {**birth_body(media_id), "procedure_code": "9.9"})
    assert proc.status_code == 404 and proc.json()["code"] == "dossier.procedure_not_found"


async def test_citizens_see_only_their_own_dossiers_with_cursor_pages(
    client: httpx.AsyncClient, citizen: Person, other_citizen: Person
) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    codes = [(await submit(client, citizen, birth_body(media_id))).json()["code"] for _ in range(3)]
    page = (await client.get(DOSSIERS, params={"limit": 2}, headers=citizen.headers)).json()
    assert [d["code"] for d in page["items"]] == codes[::-1][:2]
    rest = (
        await client.get(
            DOSSIERS, params={"limit": 2, "cursor": page["next_cursor"]}, headers=citizen.headers
        )
    ).json()
    assert [d["code"] for d in rest["items"]] == [codes[0]] and rest["next_cursor"] is None
    theirs = await client.get(DOSSIERS, headers=other_citizen.headers)
    assert theirs.json()["items"] == []
    peek = await client.get(f"{DOSSIERS}/{codes[0]}", headers=other_citizen.headers)
    assert peek.status_code == 404 and peek.json()["code"] == "dossier.not_found"
    for action, body in (("withdraw", {}), ("rating", {"score": 5}), ("supplement", {"note": "x"})):
        response = await client.post(
            f"{DOSSIERS}/{codes[0]}/{action}", json=body, headers=other_citizen.headers
        )
        assert response.status_code == 404, action
    bad_cursor = await client.get(DOSSIERS, params={"cursor": "!!"}, headers=citizen.headers)
    assert bad_cursor.json()["code"] == "dossier.cursor_invalid"


async def test_withdraw_then_nothing_more(client: httpx.AsyncClient, citizen: Person) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    code = (await submit(client, citizen, birth_body(media_id))).json()["code"]
    withdrawn = await client.post(
        f"{DOSSIERS}/{code}/withdraw", json={"reason": "Nộp nhầm"}, headers=citizen.headers
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert withdrawn.json()["timeline"][-1]["note"] == "Nộp nhầm"
    again = await client.post(f"{DOSSIERS}/{code}/withdraw", json={}, headers=citizen.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "dossier.invalid_transition"
    rating = await client.post(
        f"{DOSSIERS}/{code}/rating", json={"score": 4}, headers=citizen.headers
    )
    assert rating.status_code == 409
    supplement = await client.post(
        f"{DOSSIERS}/{code}/supplement", json={"note": "x"}, headers=citizen.headers
    )
    assert supplement.status_code == 409


async def test_public_lookup_by_code_and_last_phone_digits_is_rate_limited(
    client: httpx.AsyncClient, citizen: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    code = (await submit(client, citizen, birth_body(media_id))).json()["code"]
    url = f"/api/v1/public/dossiers/{code}"
    found = await client.get(url, params={"phone_last4": citizen.phone[-4:]})
    assert found.status_code == 200
    assert found.json()["status"] == "submitted"
    assert "form" not in found.json() and "applicant_name" not in found.json()
    wrong = await client.get(url, params={"phone_last4": "0000"})
    unknown = await client.get(
        "/api/v1/public/dossiers/TNG-PDP-000000-0001", params={"phone_last4": citizen.phone[-4:]}
    )
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json()["code"] == unknown.json()["code"] == "dossier.not_found"
    monkeypatch.setattr(get_dossier_settings(), "public_lookup_per_code_per_hour", 5)
    statuses = [
        (await client.get(url, params={"phone_last4": f"{i:04d}"})).status_code for i in range(1, 6)
    ]
    assert statuses[-1] == 429  # wrong guesses were counted, failures included
    blocked = await client.get(url, params={"phone_last4": citizen.phone[-4:]})
    assert blocked.status_code == 429
    clock.advance(timedelta(hours=1))
    assert (await client.get(url, params={"phone_last4": citizen.phone[-4:]})).status_code == 200
