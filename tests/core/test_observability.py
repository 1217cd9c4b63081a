"""What operators see: Prometheus metrics by route template, JSON log lines with the request id."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.support.metrics import sample, scrape


def requests_total(exposition: str, **labels: str) -> float:
    return sample(exposition, "http_requests_total", **labels)


async def test_metrics_count_requests_by_route_template_not_raw_path(client):
    citizen = uuid.uuid4()
    labels = {"method": "GET", "route": "/api/v1/staff/citizens/{citizen_id}", "status": "401"}
    before = requests_total(await scrape(client), **labels)

    for _ in range(2):
        assert (await client.get(f"/api/v1/staff/citizens/{citizen}")).status_code == 401

    exposition = await scrape(client)
    assert requests_total(exposition, **labels) == before + 2
    assert str(citizen) not in exposition
    assert "# TYPE http_requests_total counter" in exposition
    assert "http_request_duration_seconds_bucket" in exposition


async def test_unknown_paths_share_one_label(client):
    before = requests_total(await scrape(client), method="GET", route="unmatched", status="404")

    await client.get(f"/does-not-exist/{uuid.uuid4()}")
    await client.get(f"/neither/{uuid.uuid4()}")

    exposition = await scrape(client)
    assert requests_total(exposition, method="GET", route="unmatched", status="404") == before + 2
    assert "does-not-exist" not in exposition


async def test_metrics_speak_openmetrics_when_asked(client):
    response = await client.get("/metrics", headers={"accept": "application/openmetrics-text"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


@pytest.fixture(scope="module")
def failing_app() -> FastAPI:
    application = create_app(run_worker=False)

    @application.get("/test-only/fails/{item}")
    async def fails(item: str) -> None:
        logging.getLogger("some.library").warning("about to fail on %s", item)
        raise ValueError(f"cannot handle {item}")

    return application


@pytest.fixture
async def failing_client(failing_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=failing_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_logs_are_json_lines_carrying_the_request_id(failing_client, capsys):
    capsys.readouterr()

    response = await failing_client.get("/test-only/fails/42", headers={"x-request-id": "log-1"})

    assert response.status_code == 500
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [r for r in records if r.get("request_id") == "log-1"]
    by_event = {r["event"]: r for r in mine}
    failure = by_event["unhandled_error"]
    assert failure["level"] == "error"
    assert "ValueError: cannot handle 42" in failure["exception"]
    assert failure["timestamp"].endswith("Z")
    library = by_event["about to fail on 42"]  # stdlib logging, same format and context
    assert library["logger"] == "some.library"
    assert library["level"] == "warning"
    access = by_event["request"]
    assert access["status"] == 500
    assert access["route"] == "/test-only/fails/{item}"
    assert access["path"] == "/test-only/fails/42"


async def test_a_new_request_does_not_inherit_the_previous_request_id(failing_client, capsys):
    await failing_client.get("/test-only/fails/1", headers={"x-request-id": "first"})
    capsys.readouterr()

    response = await failing_client.get("/test-only/fails/2")

    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert records
    assert {r["request_id"] for r in records} == {response.headers["x-request-id"]}


async def test_problems_are_counted_by_their_code(client):
    """Operators see which refusals clients get, not only their status."""
    citizen = f"/api/v1/staff/citizens/{uuid.uuid4()}"
    before = await scrape(client)
    answers = [
        await client.get(citizen),
        await client.get(citizen),
        await client.get(f"/does-not-exist/{uuid.uuid4()}"),
    ]
    codes = [answer.json()["code"] for answer in answers]
    assert codes[0] == codes[1] != codes[2]

    after = await scrape(client)
    for code in set(codes):
        assert sample(after, "problems_total", code=code) == (
            sample(before, "problems_total", code=code) + codes.count(code)
        )
