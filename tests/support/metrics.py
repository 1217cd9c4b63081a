"""Reading the service's own /metrics exposition, as Prometheus would scrape it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of the sample `name` (full name: `x_total`, `x_count`) whose labels include
    `labels`; 0 when there is none yet."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0
