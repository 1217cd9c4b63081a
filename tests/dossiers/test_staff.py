"""Staff see and act only on their ward's queue (404 elsewhere); city admins see all; the queue
filters and pages; statistics for the operations centre."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Direct, get_engine
from app.dossiers import service
from tests.support.dossiers import (
    Person,
    birth_body,
    idem,
    pdf_bytes,
    travel_to,
    upload,
    upload_pdf,
)

STAFF = "/api/v1/staff/dossiers"


async def new_dossier(client: httpx.AsyncClient, citizen: Person, ward: str = "TNG-PDP") -> str:
    media_id = await upload_pdf(client, citizen.headers)
    response = await client.post(
        "/api/v1/dossiers", json=birth_body(media_id, ward=ward), headers=idem(citizen.headers)
    )
    assert response.status_code == 201, response.text
    return response.json()["code"]


def act(client: httpx.AsyncClient, staff: Person, code: str, **body: object):  # type: ignore[no-untyped-def]
    return client.post(f"{STAFF}/{code}/transitions", json=body, headers=staff.headers)


async def test_staff_of_another_ward_get_404_on_every_staff_endpoint(
    client: httpx.AsyncClient,
    citizen: Person,
    pdp_staff: Person,
    gs_staff: Person,
    city_admin: Person,
) -> None:
    code = await new_dossier(client, citizen)
    media_id = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()[
        "documents"
    ][0]["media_id"]
    result = await upload(client, gs_staff.headers, pdf_bytes(), purpose="result")
    outsider_calls = [
        ("GET", f"{STAFF}/{code}", None),
        ("GET", f"{STAFF}/{code}/documents/{media_id}", None),
        *[
            (
                "POST",
                f"{STAFF}/{code}/transitions",
                {
                    "action": action,
                    "note": "n",
                    "reasons": ["r"],
                    "apology": "a",
                    "assignee_id": gs_staff.id,
                    "new_due_date": "2030-01-02",
                    "result_media_id": result.json()["id"],
                },
            )
            for action in (
                "receive",
                "reject_intake",
                "assign",
                "request_supplement",
                "approve",
                "reject",
                "return_result",
                "extend",
                "stop",
            )
        ],
    ]
    for method, url, body in outsider_calls:
        response = await client.request(method, url, json=body, headers=gs_staff.headers)
        assert response.status_code == 404, (method, url, body)
        assert response.json()["code"] == "dossier.not_found"
    listing = await client.get(STAFF, headers=gs_staff.headers)
    assert listing.json()["items"] == []
    smuggled = await client.get(STAFF, params={"agency": "TNG-PDP"}, headers=gs_staff.headers)
    assert smuggled.json()["items"] == []
    stats = await client.get(
        "/api/v1/staff/stats/dossiers", params={"agency": "TNG-PDP"}, headers=gs_staff.headers
    )
    assert stats.json()["rows"] == []
    # Nothing happened to the dossier; its own ward and the city admin see it.
    own = await client.get(f"{STAFF}/{code}", headers=pdp_staff.headers)
    assert own.status_code == 200 and own.json()["status"] == "submitted"
    assert len(own.json()["timeline"]) == 1
    assert (await client.get(f"{STAFF}/{code}", headers=city_admin.headers)).status_code == 200
    doc = await client.get(f"{STAFF}/{code}/documents/{media_id}", headers=pdp_staff.headers)
    assert doc.status_code == 200 and doc.content.startswith(b"%PDF")
    received = await act(client, city_admin, code, action="receive")
    assert received.status_code == 200


async def test_citizens_cannot_use_staff_endpoints(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person
) -> None:
    code = await new_dossier(client, citizen)
    for method, url, body in (
        ("GET", STAFF, None),
        ("GET", f"{STAFF}/{code}", None),
        ("POST", f"{STAFF}/{code}/transitions", {"action": "receive"}),
        ("GET", "/api/v1/staff/stats/dossiers", None),
    ):
        response = await client.request(method, url, json=body, headers=idem(citizen.headers))
        assert response.status_code == 403, url
        assert response.json()["code"] == "auth.forbidden"
    assert (await client.get(STAFF)).status_code == 401


async def test_province_queue_is_for_city_admins(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person, city_admin: Person
) -> None:
    photo = await upload(client, citizen.headers, pdf_bytes(), "cccd.pdf")
    body = {
        "procedure_code": "2.000488",
        "ward_code": "TNG-PDP",
        "form": {
            "person": {"full_name": "Trần Thị Mai", "cccd": "019190000123"},
            "certificate_type": 2,
            "purpose": "Du học",
        },
        "documents": [{"document_code": "cccd", "media_id": photo.json()["id"]}],
    }
    code = (await client.post("/api/v1/dossiers", json=body, headers=idem(citizen.headers))).json()[
        "code"
    ]
    assert (await client.get(f"{STAFF}/{code}", headers=pdp_staff.headers)).status_code == 404
    queue = await client.get(STAFF, params={"agency": "TNG"}, headers=city_admin.headers)
    assert [d["code"] for d in queue.json()["items"]] == [code]
    received = await act(client, city_admin, code, action="receive")
    assert received.status_code == 200


async def test_queue_filters_and_cursor_pages(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person, city_admin: Person
) -> None:
    await travel_to(client, datetime(2027, 3, 1, 9, 0), citizen, pdp_staff, city_admin)
    first = [await new_dossier(client, citizen) for _ in range(3)]
    await travel_to(client, datetime(2027, 3, 2, 9, 0), citizen, pdp_staff, city_admin)
    second = [await new_dossier(client, citizen) for _ in range(2)]
    gs = await new_dossier(client, citizen, ward="TNG-GS")
    await act(client, pdp_staff, first[0], action="receive")
    await act(client, pdp_staff, first[1], action="receive")
    await act(client, pdp_staff, first[1], action="assign", assignee_id=pdp_staff.id)

    async def codes(who: Person = pdp_staff, **params: object) -> list[str]:
        response = await client.get(STAFF, params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        return [d["code"] for d in response.json()["items"]]

    assert await codes() == [*second[::-1], *first[::-1]]
    assert await codes(status="submitted") == [*second[::-1], first[2]]
    assert await codes(status=["received", "in_progress"]) == [first[1], first[0]]
    assert await codes(assignee=pdp_staff.id) == [first[1]]
    assert await codes(procedure="1.001193", submitted_from="2027-03-02") == second[::-1]
    assert await codes(submitted_to="2027-03-01") == first[::-1]
    assert await codes(procedure="2.000815") == []
    assert gs in await codes(city_admin)
    assert await codes(city_admin, agency="TNG-GS") == [gs]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(STAFF, params=params, headers=pdp_staff.headers)).json()
        seen += [d["code"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [*second[::-1], *first[::-1]]
    bad = await client.get(STAFF, params={"status": "lost"}, headers=pdp_staff.headers)
    assert bad.status_code == 422


async def test_statistics_by_ward_and_month(
    client: httpx.AsyncClient,
    citizen: Person,
    pdp_staff: Person,
    gs_staff: Person,
    city_admin: Person,
) -> None:
    await travel_to(
        client, datetime(2027, 1, 28, 9, 0), citizen, pdp_staff, gs_staff, city_admin
    )  # Thursday
    on_time, late, waiting = [await new_dossier(client, citizen) for _ in range(3)]
    other = await new_dossier(client, citizen, ward="TNG-GS")
    for code in (on_time, late):
        await act(client, pdp_staff, code, action="receive")
    await act(client, pdp_staff, on_time, action="approve")
    result = await upload(client, pdp_staff.headers, pdf_bytes(), purpose="result")
    await act(
        client, pdp_staff, on_time, action="return_result", result_media_id=result.json()["id"]
    )
    await client.post(
        f"/api/v1/dossiers/{on_time}/rating", json={"score": 4}, headers=citizen.headers
    )
    await travel_to(
        client, datetime(2027, 2, 1, 9, 0), citizen, pdp_staff, gs_staff, city_admin
    )  # Monday, after the Friday deadline
    await act(client, pdp_staff, late, action="reject", reasons=["Không đủ điều kiện"])

    rows = (await client.get("/api/v1/staff/stats/dossiers", headers=city_admin.headers)).json()[
        "rows"
    ]
    by_agency = {r["agency_code"]: r for r in rows}
    pdp = by_agency["TNG-PDP"]
    assert pdp["period"] == "2027-01"
    assert (pdp["submitted"], pdp["received"], pdp["resolved"], pdp["on_time"]) == (3, 2, 2, 1)
    assert pdp["on_time_rate"] == 0.5
    assert pdp["average_processing_days"] == 1.0  # 0 working days, and 2 (Fri, Mon)
    assert (pdp["ratings"], pdp["satisfaction"]) == (1, 4.0)
    assert by_agency["TNG-GS"]["submitted"] == 1 and by_agency["TNG-GS"]["resolved"] == 0
    mine = (await client.get("/api/v1/staff/stats/dossiers", headers=gs_staff.headers)).json()[
        "rows"
    ]
    assert [r["agency_code"] for r in mine] == ["TNG-GS"]
    later = (
        await client.get(
            "/api/v1/staff/stats/dossiers", params={"from": "2027-02"}, headers=city_admin.headers
        )
    ).json()["rows"]
    assert later == []
    assert waiting and other


@pytest.mark.parametrize("path", ["/api/v1/staff/stats/dossiers?from=2027-13x"])
async def test_bad_stats_query(client: httpx.AsyncClient, city_admin: Person, path: str) -> None:
    assert (await client.get(path, headers=city_admin.headers)).status_code == 422


async def test_a_queue_page_is_one_statement_without_a_session(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue runs on the driver's connection (`Direct`): the caller's check and the page,
    one statement each whatever the page's length; nothing through an ORM session (no BEGIN,
    no COMMIT)."""
    await travel_to(client, datetime(2027, 3, 1, 9, 0), citizen, pdp_staff)
    for _ in range(5):
        await act(client, pdp_staff, await new_dossier(client, citizen), action="receive")
    await travel_to(client, datetime(2027, 3, 15, 9, 0), citizen, pdp_staff)
    direct: list[str] = []
    session: list[str] = []
    run = Direct._run

    async def counted(dialect: str, sql: str, args: list[object]) -> object:
        direct.append(sql)
        return await run(dialect, sql, args)

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        session.append(statement)

    monkeypatch.setattr(Direct, "_run", staticmethod(counted))
    engine = get_engine().sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for limit in (1, 5):
            direct.clear()
            page = await client.get(
                STAFF, params={"overdue": "true", "limit": limit}, headers=pdp_staff.headers
            )
            assert len(page.json()["items"]) == limit
            assert len(direct) == 2, direct  # who is calling, then the page
            assert sum("from dossiers" in sql.lower() for sql in direct) == 1
        assert session == []
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


async def test_the_queue_refuses_an_ended_session_and_other_roles(
    client: httpx.AsyncClient, citizen: Person, pdp_staff: Person
) -> None:
    assert (await client.get(STAFF, headers=citizen.headers)).status_code == 403
    assert (await client.get(STAFF)).status_code == 401
    assert (await client.post("/api/v1/auth/logout", headers=pdp_staff.headers)).status_code == 204
    ended = await client.get(STAFF, headers=pdp_staff.headers)
    assert ended.status_code == 401 and ended.json()["code"] == "auth.token_invalid"


async def test_overdue_page_reads_the_partial_index_in_order_even_in_a_generic_plan(
    db: AsyncSession, backend: str
) -> None:
    """A prepared statement's generic plan knows no parameter values: the open statuses must be
    literals for PostgreSQL to prove that the partial index `ix_dossiers_open_due` applies, and
    the order must be the index's, so the first page needs neither a scan nor a sort."""
    if backend != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    for cursor in (False, True):
        shape = service._ListShape(ward=True, overdue=True, cursor=cursor)
        sql = str(service._list_statement(shape).compile(dialect=db.bind.dialect))
        args = (
            "'TNG-PDP', now(), now(), gen_random_uuid(), 21" if cursor else "'TNG-PDP', now(), 21"
        )
        await db.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await db.execute(sa.text("SET LOCAL enable_seqscan = off"))
        await db.execute(sa.text(f"PREPARE overdue_page AS {sql}"))
        plan = "\n".join(
            (await db.execute(sa.text(f"EXPLAIN EXECUTE overdue_page({args})"))).scalars()
        )
        await db.execute(sa.text("DEALLOCATE overdue_page"))
        assert "ix_dossiers_open_due" in plan, plan
        assert "Sort" not in plan, plan
    await db.rollback()
