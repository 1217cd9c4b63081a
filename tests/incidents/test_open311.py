"""Open311 GeoReport v2: discovery, services, requests in JSON and XML; filing by a citizen token
or a partner api_key. Responses are checked against the constraints of the open311 project's
published GeoReport v2 JSON Schemas (schema-validation repository: service.json,
service-definition.json, request.json), transcribed below."""

from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from app.incidents.categories import CATEGORIES
from tests.incidents.helpers import CENTRE, HANOI, act, citizen, file_report, north, staff
from tests.support.flows import seed_wards

NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}
NULLABLE_NUMBER = {"anyOf": [{"type": "number"}, {"type": "null"}]}
SERVICE = {
    "required": ["service_code", "service_name", "metadata", "type"],
    "properties": {
        "service_code": {"type": "string"},
        "service_name": {"type": "string"},
        "description": NULLABLE_STRING,
        "metadata": {"type": "boolean"},
        "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
        "keywords": NULLABLE_STRING,
        "group": NULLABLE_STRING,
    },
}
SERVICE_DEFINITION = {
    "required": ["service_code", "attributes"],
    "properties": {"service_code": {"type": "string"}, "attributes": {"type": "array"}},
}
REQUEST = {
    "required": ["service_request_id", "status", "service_code", "requested_datetime"],
    "properties": {
        "service_request_id": {"type": "string"},
        "status": {"type": "string", "enum": ["open", "closed"]},
        "status_notes": NULLABLE_STRING,
        "service_name": NULLABLE_STRING,
        "service_code": {"type": "string"},
        "description": {"anyOf": [{"type": "string", "maxLength": 4000}, {"type": "null"}]},
        "agency_responsible": NULLABLE_STRING,
        "service_notice": NULLABLE_STRING,
        "requested_datetime": {"type": "string"},
        "updated_datetime": NULLABLE_STRING,
        "expected_datetime": NULLABLE_STRING,
        "address": NULLABLE_STRING,
        "address_id": NULLABLE_STRING,
        "zipcode": NULLABLE_STRING,
        "lat": NULLABLE_NUMBER,
        "long": NULLABLE_NUMBER,
        "media_url": NULLABLE_STRING,
    },
}


def valid_list(data, item_schema) -> None:
    jsonschema.validate(data, {"type": "array", "items": item_schema})


def parse_xml(data: bytes) -> ET.Element:
    return ET.fromstring(data)  # noqa: S314  (our own server's output)


def w3c(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_discovery_and_services_in_json_and_xml(client, db):
    discovery = await client.get("/open311/v2/discovery.json")
    services = await client.get("/open311/v2/services.json")
    services_xml = await client.get("/open311/v2/services.xml")
    definition = await client.get("/open311/v2/services/flooding.json")
    unknown = await client.get("/open311/v2/services/ufo.xml")

    assert (
        discovery.json()["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    )
    valid_list(services.json(), SERVICE)
    assert [s["service_code"] for s in services.json()] == list(CATEGORIES)
    root = parse_xml(services_xml.content)
    assert services_xml.headers["content-type"].startswith("text/xml")
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == list(CATEGORIES)
    assert root.find("service/metadata").text == "false"
    jsonschema.validate(definition.json(), SERVICE_DEFINITION)
    assert unknown.status_code == 404
    error = parse_xml(unknown.content)
    assert error.tag == "errors" and error.findtext("error/code") == "404"


async def test_a_citizen_files_through_open311_and_reads_it_back_once_verified(client, db):
    await seed_wards(db)
    me = await citizen(client, db, "0912700001")
    officer = await staff(client, db, "0981700001", "TNG-PDP")

    created = await client.post(
        "/open311/v2/requests.json",
        headers=me,
        data={
            "service_code": "damaged_road",
            "lat": str(CENTRE[0]),
            "long": str(CENTRE[1]),
            "address_string": "Đường Hoàng Văn Thụ",
            "description": "Ổ gà lớn",
        },
    )

    assert created.status_code == 200, created.text
    [receipt] = created.json()
    request_id = receipt["service_request_id"]
    pending = (await client.get(f"/open311/v2/requests/{request_id}.json")).json()
    valid_list(pending, REQUEST)
    assert pending[0]["status"] == "open" and pending[0]["description"] is None
    assert pending[0]["status_notes"] == "Awaiting verification by ward staff"

    await act(client, officer, request_id, "verify", note="Đã xác minh")
    [record] = (await client.get(f"/open311/v2/requests/{request_id}.json")).json()
    valid_list([record], REQUEST)
    assert (record["status"], record["status_notes"], record["description"]) == (
        "open",
        "Đã xác minh",
        "Ổ gà lớn",
    )
    assert (record["lat"], record["long"]) == CENTRE
    assert record["agency_responsible"] == "Phường Phan Đình Phùng"
    assert w3c(record["requested_datetime"]) <= w3c(record["updated_datetime"])
    mine = (await client.get("/api/v1/me/incidents", headers=me)).json()
    assert [i["id"] for i in mine["items"]] == [request_id]

    xml = parse_xml((await client.get(f"/open311/v2/requests/{request_id}.xml")).content)
    assert xml.tag == "service_requests"
    assert xml.findtext("request/service_request_id") == request_id
    assert xml.findtext("request/status") == "open"


async def test_requests_list_filters_by_code_status_and_dates(client, db):
    await seed_wards(db)
    me = await citizen(client, db, "0912700002")
    officer = await staff(client, db, "0981700002", "TNG-PDP")
    flood = await file_report(client, me, CENTRE)
    jam = await file_report(client, me, north(CENTRE, 500), category="traffic_jam")
    await file_report(client, me, north(CENTRE, 900), category="accident")  # unverified
    await act(client, officer, flood["id"], "verify")
    await act(client, officer, jam["id"], "verify")
    await act(client, officer, jam["id"], "resolve")

    everything = (await client.get("/open311/v2/requests.json")).json()
    open_only = (await client.get("/open311/v2/requests.json", params={"status": "open"})).json()
    jams = (
        await client.get("/open311/v2/requests.json", params={"service_code": "traffic_jam"})
    ).json()
    future = (
        await client.get("/open311/v2/requests.json", params={"start_date": "2099-01-01T00:00:00Z"})
    ).json()
    bad = await client.get("/open311/v2/requests.json", params={"status": "pending"})

    valid_list(everything, REQUEST)
    assert {r["service_request_id"] for r in everything} == {flood["id"], jam["id"]}
    assert [r["service_request_id"] for r in open_only] == [flood["id"]]
    assert [(r["service_request_id"], r["status"]) for r in jams] == [(jam["id"], "closed")]
    assert future == []
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400


async def test_a_partner_files_with_an_api_key_and_twins_are_joined(client, db, monkeypatch):
    from app.incidents.config import get_incident_settings

    monkeypatch.setattr(
        get_incident_settings(),
        "incident_open311_api_keys",
        {"k-123456": "FixMyStreet Thai Nguyen"},
    )
    form = {
        "service_code": "flooding",
        "lat": str(CENTRE[0]),
        "long": str(CENTRE[1]),
        "api_key": "k-123456",
    }

    first = await client.post("/open311/v2/requests.xml", data=form)
    second = await client.post(
        "/open311/v2/requests.json", data={**form, "lat": str(north(CENTRE, 40)[0])}
    )
    no_key = await client.post("/open311/v2/requests.json", data={**form, "api_key": "nope"})
    outside = await client.post(
        "/open311/v2/requests.json", data={**form, "lat": str(HANOI[0]), "long": str(HANOI[1])}
    )
    no_lat = await client.post("/open311/v2/requests.json", data={**form, "lat": ""})

    assert first.status_code == 200, first.text
    first_id = parse_xml(first.content).findtext("request/service_request_id")
    assert second.json()[0]["service_request_id"] == first_id
    assert "Joined" in second.json()[0]["service_notice"]
    assert no_key.status_code == 403
    assert outside.status_code == 400
    assert "incident.outside_service_area" in outside.json()[0]["description"]
    assert no_lat.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/open311/v2/services.yaml",
        "/open311/v2/requests/not-an-id.json",
        "/open311/v2/requests/0190a000-0000-7000-8000-000000000000.json",
        "/open311/v2/services.json?jurisdiction_id=hanoi.gov.vn",
    ],
)
async def test_unknown_things_are_open311_404s(client, db, path):
    response = await client.get(path)

    assert response.status_code == 404
    assert response.json()[0]["code"] == 404
