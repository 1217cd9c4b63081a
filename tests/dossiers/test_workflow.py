"""A dossier's life as citizen and ward staff live it, deadlines in working days across Tết 2027,
and the state machine refusing what is out of order."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx
import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditEvent
from app.core.jobs import Job
from app.dossiers.models import Dossier, DossierEvent
from app.dossiers.workflow import TRANSITIONS, Actor, Status
from tests.support.dossiers import (
    Person,
    birth_body,
    idem,
    pdf_bytes,
    travel_to,
    upload,
    upload_pdf,
)

PAYLOAD_SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "mobile_contracts"
    / "jobs"
    / "dossier.status_changed.schema.json"
)


def act(client: httpx.AsyncClient, staff: Person, code: str, **body: object):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/staff/dossiers/{code}/transitions", json=body, headers=staff.headers
    )


async def new_dossier(client: httpx.AsyncClient, citizen: Person, ward: str = "TNG-PDP") -> str:
    media_id = await upload_pdf(client, citizen.headers)
    response = await client.post(
        "/api/v1/dossiers", json=birth_body(media_id, ward=ward), headers=idem(citizen.headers)
    )
    assert response.status_code == 201, response.text
    return response.json()["code"]


async def test_birth_registration_across_tet_with_a_supplement(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    # Tuesday 2 Feb 2027, two days before the Tết holiday (Thu 4 – Wed 10 Feb).
    await travel_to(client, datetime(2027, 2, 2, 8, 30), citizen, pdp_staff)
    code = await new_dossier(client, citizen)

    received = await act(client, pdp_staff, code, action="receive", note="Hồ sơ hợp lệ")
    assert received.status_code == 200, received.text
    body = received.json()
    assert body["status"] == "received"
    # One working day from Tue 2 Feb: Wed 3 Feb, 17:00 local.
    assert body["due_at"] == "2027-02-03T10:00:00Z"
    assert body["timeline"][-1]["data"]["appointment_at"] == "2027-02-03T10:00:00+00:00"

    await travel_to(client, datetime(2027, 2, 3, 10, 0), citizen, pdp_staff)
    asked = await act(
        client,
        pdp_staff,
        code,
        action="request_supplement",
        note="Giấy chứng sinh bị mờ, đề nghị chụp lại",
        requested_documents=["giay_chung_sinh"],
    )
    assert asked.json()["status"] == "supplement_requested" and asked.json()["paused"] is True
    again = await act(client, pdp_staff, code, action="request_supplement", note="lần nữa")
    assert again.status_code == 409 and again.json()["code"] == "dossier.invalid_transition"

    # Tết passes; paused dossiers are never overdue.
    await travel_to(client, datetime(2027, 2, 11, 9, 0), citizen, pdp_staff)
    mine = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert mine["overdue"] is False and mine["allowed_actions"] == ["supplement", "withdraw"]
    clearer = await upload(client, citizen.headers, pdf_bytes(2048), "chung-sinh-ro.pdf")
    supplied = await client.post(
        f"/api/v1/dossiers/{code}/supplement",
        headers=citizen.headers,
        json={
            "note": "Đã chụp lại",
            "documents": [{"document_code": "giay_chung_sinh", "media_id": clearer.json()["id"]}],
        },
    )
    assert supplied.status_code == 200, supplied.text
    # Paused Wed 3 Feb, resumed Thu 11 Feb: one working day lost (Tết), so due Thu 11 Feb.
    assert supplied.json()["status"] == "in_progress"
    staff_view = (
        await client.get(f"/api/v1/staff/dossiers/{code}", headers=pdp_staff.headers)
    ).json()
    assert "request_supplement" not in staff_view["allowed_actions"]  # only once
    once = await act(client, pdp_staff, code, action="request_supplement", note="lần hai")
    assert once.status_code == 409
    assert once.json()["code"] == "dossier.supplement_already_requested"
    assert supplied.json()["due_at"] == "2027-02-11T10:00:00Z"
    assert supplied.json()["legal_due_at"] == "2027-02-11T10:00:00Z"

    await travel_to(client, datetime(2027, 2, 11, 15, 0), citizen, pdp_staff)
    approved = await act(client, pdp_staff, code, action="approve", note="Đủ điều kiện")
    assert approved.json()["status"] == "approved" and approved.json()["timeliness"] == "on_time"
    result = await upload(
        client, pdp_staff.headers, pdf_bytes(4096), "giay-khai-sinh.pdf", purpose="result"
    )
    returned = await act(
        client,
        pdp_staff,
        code,
        action="return_result",
        result_media_id=result.json()["id"],
        note="Trả bản điện tử",
    )
    assert returned.status_code == 200, returned.text
    assert returned.json()["status"] == "returned"

    rated = await client.post(
        f"/api/v1/dossiers/{code}/rating",
        headers=citizen.headers,
        json={"score": 5, "comment": "Nhanh, chu đáo"},
    )
    assert rated.status_code == 200 and rated.json()["rating"] == 5
    twice = await client.post(
        f"/api/v1/dossiers/{code}/rating", headers=citizen.headers, json={"score": 1}
    )
    assert twice.status_code == 409 and twice.json()["code"] == "dossier.already_rated"

    final = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert [e["action"] for e in final["timeline"]] == [
        "submit",
        "receive",
        "request_supplement",
        "supplement",
        "approve",
        "return_result",
        "rate",
    ]
    assert final["timeline"][2]["note"] == "Giấy chứng sinh bị mờ, đề nghị chụp lại"
    assert all(e["actor_id"] is None for e in final["timeline"])  # staff ids hidden
    assert final["processing_days"] == 1  # Wed 3 and Thu 11 minus the one paused day
    assert {d["stage"] for d in final["documents"]} == {"submission", "supplement", "result"}
    # The citizen can fetch the result document from the dossier.
    doc = await client.get(
        f"/api/v1/dossiers/{code}/documents/{result.json()['id']}", headers=citizen.headers
    )
    assert doc.status_code == 200 and doc.content == pdf_bytes(4096)

    # Who, when and why of every staff step is kept.
    events = (await db.execute(sa.select(DossierEvent).order_by(DossierEvent.at))).scalars().all()
    staff_events = [e for e in events if e.actor_role == "ward_staff"]
    assert {str(e.actor_id) for e in staff_events} == {pdp_staff.id}
    assert all(e.at is not None for e in events)

    # One outbox job per status change, each valid against the mobile contract.
    jobs = (
        (
            await db.execute(
                sa.select(Job).where(Job.kind == "dossier.status_changed").order_by(Job.created_at)
            )
        )
        .scalars()
        .all()
    )
    assert [j.payload["status"] for j in jobs] == [
        "submitted",
        "received",
        "supplement_requested",
        "in_progress",
        "approved",
        "returned",
    ]
    schema = json.loads(PAYLOAD_SCHEMA.read_text(encoding="utf-8"))
    for job in jobs:
        jsonschema.validate(job.payload, schema)
        assert job.payload["deep_link"] == f"cthainguyen://dossiers/{code}"
        assert job.payload["citizen_id"] == citizen.id


async def test_a_dossier_received_after_15_00_on_the_eve_of_tet_counts_from_after_tet(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person
) -> None:
    # Wed 3 Feb 2027 is the last working day before Tết (Thu 4 – Wed 10 Feb).
    await travel_to(client, datetime(2027, 2, 3, 13, 0), citizen, pdp_staff)
    early, late = await new_dossier(client, citizen), await new_dossier(client, citizen)
    await travel_to(client, datetime(2027, 2, 3, 14, 0), citizen, pdp_staff)
    before = await act(client, pdp_staff, early, action="receive")
    assert before.json()["due_at"] == "2027-02-11T10:00:00Z"  # first working day after Tết
    assert before.json()["timeline"][-1]["data"]["counted_from"] == "2027-02-03"
    # At 16:30, after the 15:00 cut-off, the receipt counts from Thu 11 Feb: due Fri 12 Feb.
    await travel_to(client, datetime(2027, 2, 3, 16, 30), citizen, pdp_staff)
    received = await act(client, pdp_staff, late, action="receive")
    assert received.status_code == 200, received.text
    assert received.json()["due_at"] == "2027-02-12T10:00:00Z"
    assert received.json()["timeline"][-1]["data"]["counted_from"] == "2027-02-11"
    assert received.json()["timeline"][-1]["at"].startswith("2027-02-03T09:30")  # when it was

    # Decided on Fri 12 Feb: on time, and one working day of processing (Fri 12 only).
    await travel_to(client, datetime(2027, 2, 12, 9, 0), citizen, pdp_staff)
    approved = await act(client, pdp_staff, late, action="approve")
    assert approved.json()["timeliness"] == "on_time"
    assert approved.json()["processing_days"] == 1


async def test_timeliness_early_and_late_and_extension_with_apology(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person
) -> None:
    await travel_to(client, datetime(2027, 1, 28, 9, 0), citizen, pdp_staff)  # Thursday
    early, late = await new_dossier(client, citizen), await new_dossier(client, citizen)
    for code in (early, late):
        assert (await act(client, pdp_staff, code, action="receive")).json()[
            "due_at"
        ] == "2027-01-29T10:00:00Z"  # Friday 17:00
    assert (await act(client, pdp_staff, early, action="approve")).json()["timeliness"] == "early"

    extend_bad = await act(
        client, pdp_staff, late, action="extend", apology="Xin lỗi", new_due_date="2027-02-06"
    )  # a Tết Saturday
    assert extend_bad.json()["code"] == "dossier.due_date_invalid"
    incomplete = await act(client, pdp_staff, late, action="extend", new_due_date="2027-02-02")
    assert incomplete.status_code == 422
    assert incomplete.json()["code"] == "dossier.transition_incomplete"
    assert incomplete.json()["errors"][0]["field"] == "body.apology"
    extended = await act(
        client,
        pdp_staff,
        late,
        action="extend",
        apology="UBND phường xin lỗi ông/bà vì chậm trả kết quả",
        new_due_date="2027-02-02",
        note="Cần xác minh thêm",
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["due_at"] == "2027-02-02T10:00:00Z"
    assert extended.json()["legal_due_at"] == "2027-01-29T10:00:00Z"
    assert extended.json()["timeline"][-1]["data"]["apology"].startswith("UBND phường xin lỗi")

    await travel_to(client, datetime(2027, 2, 1, 9, 0), citizen, pdp_staff)  # Monday
    not_overdue = (await client.get(f"/api/v1/dossiers/{late}", headers=citizen.headers)).json()
    assert not_overdue["overdue"] is False  # the new appointment has not passed
    approved = await act(client, pdp_staff, late, action="approve")
    # An extension does not make a dossier on time: judged on the legal deadline.
    assert approved.json()["timeliness"] == "late"


async def test_overdue_dossiers_are_flagged_to_staff(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person
) -> None:
    await travel_to(client, datetime(2027, 3, 1, 9, 0), citizen, pdp_staff)  # Monday
    overdue, fresh, waiting = [await new_dossier(client, citizen) for _ in range(3)]
    await act(client, pdp_staff, overdue, action="receive")
    await travel_to(client, datetime(2027, 3, 3, 9, 0), citizen, pdp_staff)  # Wednesday
    await act(client, pdp_staff, fresh, action="receive")
    listing = await client.get(
        "/api/v1/staff/dossiers", params={"overdue": "true"}, headers=pdp_staff.headers
    )
    assert [d["code"] for d in listing.json()["items"]] == [overdue]
    assert listing.json()["items"][0]["overdue"] is True
    not_overdue = await client.get(
        "/api/v1/staff/dossiers", params={"overdue": "false"}, headers=pdp_staff.headers
    )
    assert {d["code"] for d in not_overdue.json()["items"]} == {fresh, waiting}

    # Later, the most overdue come first, page by page.
    await act(client, pdp_staff, waiting, action="receive")
    await travel_to(client, datetime(2027, 3, 15, 9, 0), citizen, pdp_staff)
    seen, cursor = [], None
    while True:
        params = {"overdue": "true", "limit": 1, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            "/api/v1/staff/dossiers", params=params, headers=pdp_staff.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [d["code"] for d in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen[0] == overdue and set(seen[1:]) == {fresh, waiting} and len(seen) == 3
    dues = [
        (await client.get(f"/api/v1/dossiers/{c}", headers=citizen.headers)).json()["due_at"]
        for c in seen
    ]
    assert dues == sorted(dues)
    newest_cursor = (
        await client.get("/api/v1/staff/dossiers", params={"limit": 1}, headers=pdp_staff.headers)
    ).json()["next_cursor"]
    mixed = await client.get(
        "/api/v1/staff/dossiers",
        headers=pdp_staff.headers,
        params={"overdue": "true", "cursor": newest_cursor},
    )
    assert mixed.status_code == 422 and mixed.json()["code"] == "dossier.cursor_invalid"


@pytest.mark.parametrize("status", [s for s in Status if s != Status.SUBMITTED])
def test_state_machine_table_has_a_way_into_every_status(status: Status) -> None:
    assert any(t.target == status for t in TRANSITIONS.values())


async def test_actions_out_of_order_are_409_with_the_allowed_ones(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    code = await new_dossier(client, citizen)
    result = await upload(client, pdp_staff.headers, pdf_bytes(), purpose="result")
    bodies = {
        "reasons": ["x"],
        "assignee_id": pdp_staff.id,
        "note": "n",
        "apology": "a",
        "new_due_date": "2030-01-02",
        "result_media_id": result.json()["id"],
    }
    for action, transition in TRANSITIONS.items():
        if transition.actor != Actor.STAFF or Status.SUBMITTED in transition.sources:
            continue
        response = await act(client, pdp_staff, code, action=action, **bodies)
        assert response.status_code == 409, action
        problem = response.json()
        assert problem["code"] == "dossier.invalid_transition"
        assert problem["status"] == 409 and problem["dossier_status"] == "submitted"
        assert problem["allowed_actions"] == ["receive", "reject_intake"]
    unknown = await act(client, pdp_staff, code, action="teleport")
    assert unknown.status_code == 422
    no_reasons = await act(client, pdp_staff, code, action="reject_intake")
    assert no_reasons.json()["code"] == "dossier.transition_incomplete"
    refused = await act(
        client,
        pdp_staff,
        code,
        action="reject_intake",
        reasons=["Thiếu giấy chứng sinh bản gốc"],
        note="Hướng dẫn nộp lại",
    )
    assert refused.json()["status"] == "intake_rejected"
    assert refused.json()["outcome_reasons"] == ["Thiếu giấy chứng sinh bản gốc"]
    dossier = (await db.execute(sa.select(Dossier))).scalar_one()
    assert dossier.closed_at is not None


async def test_assign_and_stop_and_result_document_rules(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person, gs_staff: Person
) -> None:
    code = await new_dossier(client, citizen)
    await act(client, pdp_staff, code, action="receive")
    wrong = await act(client, pdp_staff, code, action="assign", assignee_id=gs_staff.id)
    assert wrong.json()["code"] == "dossier.assignee_invalid"
    assigned = await act(client, pdp_staff, code, action="assign", assignee_id=pdp_staff.id)
    assert assigned.json()["status"] == "in_progress"
    assert assigned.json()["assignee_id"] == pdp_staff.id
    await act(client, pdp_staff, code, action="approve")
    citizens_file = await upload_pdf(client, citizen.headers)
    bad_result = await act(
        client, pdp_staff, code, action="return_result", result_media_id=citizens_file
    )
    assert bad_result.json()["code"] == "dossier.result_document_invalid"

    other = await new_dossier(client, citizen)
    await act(client, pdp_staff, other, action="receive")
    stopped = await act(client, pdp_staff, other, action="stop", reasons=["Công dân không bổ sung"])
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["allowed_actions"] == []


async def test_staff_reads_are_audited(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    code = await new_dossier(client, citizen)
    response = await client.get(f"/api/v1/staff/dossiers/{code}", headers=pdp_staff.headers)
    assert response.status_code == 200
    assert response.json()["applicant_name"] == "Trần Thị Mai"
    events = (
        (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "dossiers.staff_read")))
        .scalars()
        .all()
    )
    assert len(events) == 1
    assert str(events[0].actor_id) == pdp_staff.id and str(events[0].subject_id) == citizen.id
