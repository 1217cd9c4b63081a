from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core import clock
from app.incidents.models import Incident
from tests.conftest import count
from tests.incidents.helpers import (
    CENTRE,
    COUNTRYSIDE,
    GIA_SANG,
    HANOI,
    citizen,
    file_report,
    north,
    status_jobs,
)
from tests.support.flows import seed_wards


async def test_a_report_in_the_city_goes_to_the_ward_of_its_location(client, db):
    await seed_wards(db)
    me = await citizen(client, db, "0912300001")

    body = await file_report(client, me, CENTRE)
    south = await file_report(client, me, GIA_SANG, category="damaged_road")

    assert body["status"] == "new"
    assert body["ward_code"] == "TNG-PDP"
    assert south["ward_code"] == "TNG-GS"
    assert body["reporter"] == "Nguyễn Văn A."
    assert [e["action"] for e in body["timeline"]] == ["reported"]


async def test_a_location_outside_thai_nguyen_is_refused_and_nothing_is_written(client, db):
    me = await citizen(client, db, "0912300002")

    body = await file_report(client, me, HANOI, expect=422)

    assert body["code"] == "incident.outside_service_area"
    assert await count(db, Incident) == 0


async def test_far_from_every_ward_centre_goes_to_the_province_queue(client, db):
    me = await citizen(client, db, "0912300003")

    body = await file_report(client, me, COUNTRYSIDE)

    assert body["ward_code"] is None


async def test_unknown_category_and_bad_coordinates_are_validation_errors(client, db):
    me = await citizen(client, db, "0912300004")

    bad_category = await file_report(client, me, CENTRE, category="ufo", expect=422)
    response = await client.post(
        "/api/v1/incidents", headers=me, json={"category": "flooding", "lat": 123, "lon": 105.8}
    )

    assert bad_category["code"] == "request.validation_failed"
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.lat"


async def test_reporting_needs_an_account(client, db):
    response = await client.post(
        "/api/v1/incidents", json={"category": "flooding", "lat": CENTRE[0], "lon": CENTRE[1]}
    )
    assert response.status_code == 401


async def test_a_new_report_emits_a_status_changed_job(client, db):
    me = await citizen(client, db, "0912300005")

    body = await file_report(client, me, CENTRE)

    jobs = await status_jobs(db)
    assert len(jobs) == 1
    assert jobs[0].payload["incident_id"] == body["id"]
    assert jobs[0].payload["to_status"] == "new"
    # The reporter is the actor: nobody else follows yet.
    assert jobs[0].payload["recipient_ids"] == []


async def test_a_twin_nearby_is_offered_instead_and_me_too_counts_once(client, db):
    first = await citizen(client, db, "0912300006")
    second = await citizen(client, db, "0912300007")
    original = await file_report(client, first, CENTRE)

    offered = await file_report(client, second, north(CENTRE, 80), expect=409)

    assert offered["code"] == "incident.possible_duplicate"
    assert [c["id"] for c in offered["candidates"]] == [original["id"]]
    assert 70 < offered["candidates"][0]["distance_m"] < 90
    assert await count(db, Incident) == 1

    joined = await client.post(f"/api/v1/incidents/{original['id']}/me-too", headers=second)
    again = await client.post(f"/api/v1/incidents/{original['id']}/me-too", headers=second)
    own = await client.post(f"/api/v1/incidents/{original['id']}/me-too", headers=first)

    assert joined.status_code == 200, joined.text
    assert joined.json()["me_too_count"] == 1
    assert again.json()["me_too_count"] == 1
    assert own.json()["me_too_count"] == 1  # the reporter does not count twice
    mine = (await client.get("/api/v1/me/incidents", headers=second)).json()
    assert [(i["id"], i["relation"]) for i in mine["items"]] == [(original["id"], "subscriber")]


async def test_confirm_new_files_a_twin_on_purpose(client, db):
    first = await citizen(client, db, "0912300008")
    second = await citizen(client, db, "0912300009")
    await file_report(client, first, CENTRE)

    await file_report(client, second, north(CENTRE, 50), confirm_new=True)

    assert await count(db, Incident) == 2


@pytest.fixture
def short_windows(monkeypatch):
    # Minutes rather than hours, so access tokens outlive the clock jumps.
    from app.incidents.config import get_incident_settings

    settings = get_incident_settings()
    monkeypatch.setattr(settings, "incident_duplicate_window_minutes", 5)
    monkeypatch.setattr(
        settings, "incident_duplicate_window_minutes_by_category", {"damaged_road": 12}
    )


async def test_only_the_same_category_near_and_recent_is_a_twin(client, db, short_windows):
    me = await citizen(client, db, "0912300010")
    await file_report(client, me, CENTRE, category="traffic_jam")

    await file_report(client, me, CENTRE, category="accident")  # another category
    await file_report(client, me, north(CENTRE, 400), category="traffic_jam")  # too far
    clock.advance(timedelta(minutes=6))
    await file_report(client, me, north(CENTRE, 10), category="traffic_jam")  # too late

    assert await count(db, Incident) == 4


async def test_a_slow_category_has_a_longer_duplicate_window(client, db, short_windows):
    me = await citizen(client, db, "0912300011")
    await file_report(client, me, CENTRE, category="damaged_road")
    await file_report(client, me, CENTRE, category="flooding")
    clock.advance(timedelta(minutes=10))

    await file_report(client, me, north(CENTRE, 20), category="flooding")  # default: too late

    offered = await file_report(client, me, north(CENTRE, 20), category="damaged_road", expect=409)

    assert offered["code"] == "incident.possible_duplicate"


async def test_reports_are_rate_limited_per_citizen(client, db, monkeypatch):
    from app.incidents.config import get_incident_settings

    monkeypatch.setattr(get_incident_settings(), "incident_reports_per_hour", 2)
    me = await citizen(client, db, "0912300012")
    await file_report(client, me, CENTRE, category="accident")
    await file_report(client, me, CENTRE, category="flooding")

    refused = await file_report(client, me, CENTRE, category="traffic_jam", expect=429)

    assert refused["code"] == "request.rate_limited"
    assert await count(db, Incident) == 2


async def test_unverified_reports_are_private_to_reporter_and_followers(client, db):
    reporter = await citizen(client, db, "0912300013")
    stranger = await citizen(client, db, "0912300014")
    body = await file_report(client, reporter, CENTRE)
    url = f"/api/v1/incidents/{body['id']}"

    assert (await client.get(url, headers=reporter)).status_code == 200
    assert (await client.get(url, headers=stranger)).status_code == 404
    assert (await client.get(url)).status_code == 404
    await client.post(f"{url}/me-too", headers=stranger)
    assert (await client.get(url, headers=stranger)).status_code == 200


async def test_erasing_an_account_anonymises_its_reports(client, db):
    me = await citizen(client, db, "0912300015")
    body = await file_report(client, me, CENTRE)

    response = await client.request(
        "DELETE", "/api/v1/me", headers=me, json={"password": "mot-mat-khau-dai-2026"}
    )

    assert response.status_code == 200, response.text
    assert any("traffic-incident" in r["data"] for r in response.json()["retained"])
    row = (await db.execute(sa.select(Incident))).scalar_one()
    assert str(row.id) == body["id"]
    assert row.reporter_id is None and row.reporter_display_name is None and row.anonymous


async def test_my_reports_and_follows_are_in_my_data_export(client, db):
    me = await citizen(client, db, "0912300016")
    other = await citizen(client, db, "0912300017")
    mine = await file_report(client, me, CENTRE)
    theirs = await file_report(client, other, GIA_SANG, category="accident")
    await client.post(f"/api/v1/incidents/{theirs['id']}/me-too", headers=me)

    export = (await client.get("/api/v1/me/export", headers=me)).json()

    section = export["incidents"]
    assert [i["id"] for i in section["reported"]] == [mine["id"]]
    assert {f["incident_id"] for f in section["following"]} == {mine["id"], theirs["id"]}


async def test_a_retried_report_with_the_same_idempotency_key_is_one_report(client, db):
    me = await citizen(client, db, "0912300018")
    other = await citizen(client, db, "0912300019")
    body = {"category": "flooding", "lat": CENTRE[0], "lon": CENTRE[1], "confirm_new": True}

    first = await client.post(
        "/api/v1/incidents", json=body, headers={**me, "Idempotency-Key": "phone-req-1"}
    )
    retry = await client.post(
        "/api/v1/incidents", json=body, headers={**me, "Idempotency-Key": "phone-req-1"}
    )
    theirs = await client.post(
        "/api/v1/incidents", json=body, headers={**other, "Idempotency-Key": "phone-req-1"}
    )

    assert first.status_code == retry.status_code == theirs.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert theirs.json()["id"] != first.json()["id"]  # keys are per citizen
    assert await count(db, Incident) == 2
