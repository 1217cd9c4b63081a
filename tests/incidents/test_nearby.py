from __future__ import annotations

import warnings

import sqlalchemy as sa

from app.incidents import geo
from tests.incidents.helpers import (
    CENTRE,
    act,
    citizen,
    file_report,
    north,
    staff,
)
from tests.support.flows import seed_wards


async def _verified(client, reporter, officer, point, **extra):
    body = await file_report(client, reporter, point, confirm_new=True, **extra)
    await act(client, officer, body["id"], "verify")
    return body


async def test_nearby_lists_verified_incidents_nearest_first_without_reporter_if_anonymous(
    client, db
):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912500001")
    officer = await staff(client, db, "0981500001", "TNG-PDP")
    far = await _verified(client, reporter, officer, north(CENTRE, 900))
    near = await _verified(client, reporter, officer, north(CENTRE, 100), anonymous=True)
    await file_report(client, reporter, north(CENTRE, 50), category="accident")  # unverified
    await _verified(client, reporter, officer, north(CENTRE, 3000))  # outside the radius

    response = await client.get(
        "/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 1000}
    )

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["id"] for i in items] == [near["id"], far["id"]]
    assert 95 < items[0]["distance_m"] < 105
    assert items[0]["reporter"] is None and items[1]["reporter"] == "Nguyễn Văn A."
    assert "reporter_id" not in items[0]


async def test_at_the_same_distance_the_newest_comes_first(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912500002")
    officer = await staff(client, db, "0981500002", "TNG-PDP")
    older = await _verified(client, reporter, officer, CENTRE, category="accident")
    newer = await _verified(client, reporter, officer, CENTRE, category="traffic_jam")

    items = (
        await client.get("/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()["items"]

    assert [i["id"] for i in items] == [newer["id"], older["id"]]


async def test_nearby_pages_with_a_cursor_see_every_incident_once(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912500003")
    officer = await staff(client, db, "0981500003", "TNG-PDP")
    expected = []
    for i in range(7):
        expected.append(
            (
                await _verified(
                    client,
                    reporter,
                    officer,
                    north(CENTRE, 120 * i + (i % 2)),
                    category="traffic_jam",
                )
            )["id"]
        )

    seen, cursor = [], None
    while True:
        params = {"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 5000, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/incidents/nearby", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert seen == expected


async def test_resolved_incidents_leave_the_feed_and_category_filters(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912500004")
    officer = await staff(client, db, "0981500004", "TNG-PDP")
    flood = await _verified(client, reporter, officer, CENTRE)
    jam = await _verified(client, reporter, officer, CENTRE, category="traffic_jam")
    await act(client, officer, flood["id"], "resolve")

    everything = (
        await client.get("/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()
    floods = (
        await client.get(
            "/api/v1/incidents/nearby",
            params={"lat": CENTRE[0], "lon": CENTRE[1], "category": "flooding"},
        )
    ).json()

    assert [i["id"] for i in everything["items"]] == [jam["id"]]
    assert floods["items"] == []


async def test_bad_nearby_queries_get_clear_codes(client, db):
    base = {"lat": CENTRE[0], "lon": CENTRE[1]}
    too_far = await client.get("/api/v1/incidents/nearby", params={**base, "radius_m": 50000})
    bad_cursor = await client.get("/api/v1/incidents/nearby", params={**base, "cursor": "x"})
    no_lat = await client.get("/api/v1/incidents/nearby", params={"lon": CENTRE[1]})

    assert too_far.json()["code"] == "incident.radius_too_large"
    assert bad_cursor.json()["code"] == "incident.invalid_cursor"
    assert no_lat.status_code == 422


def test_grid_cells_cover_the_circle_and_haversine_is_right():
    # 1 degree of latitude is ~111.2 km everywhere.
    assert abs(geo.haversine_m(21.0, 105.0, 22.0, 105.0) - 111_195) < 10
    box = geo.bounding_box(CENTRE[0], CENTRE[1], 2000)
    cells = geo.cells_covering(box, 0.01)
    for dlat in (-0.017, 0.0, 0.017):
        for dlon in (-0.019, 0.0, 0.019):
            assert geo.cell_of(CENTRE[0] + dlat, CENTRE[1] + dlon, 0.01) in cells
    assert geo.cells_covering(geo.bounding_box(21.5, 105.8, 500_000), 0.01) is None


async def test_the_feed_inside_a_callers_transaction_reads_the_same_page(client, db):
    from app.incidents import feed

    await seed_wards(db)
    reporter = await citizen(client, db, "0912500006")
    officer = await staff(client, db, "0981500006", "TNG-PDP")
    shown = await _verified(client, reporter, officer, north(CENTRE, 200))
    over_http = (
        await client.get("/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()

    async with db.begin():  # a caller's session: the page is read in its transaction
        await db.execute(sa.select(1))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            items, cursor = await feed.nearby(
                db, lat=CENTRE[0], lon=CENTRE[1], radius_m=2000, limit=20, cursor=None
            )

    assert [str(i["id"]) for i in items] == [i["id"] for i in over_http["items"]] == [shown["id"]]
    assert items[0]["distance_m"] == over_http["items"][0]["distance_m"] and cursor is None
