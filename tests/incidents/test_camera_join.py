from __future__ import annotations

import pytest

from app.core import clock
from app.incidents import service
from app.incidents.models import Incident
from tests.incidents.helpers import CENTRE, north
from tests.support.flows import seed_wards


def test_independent_sightings_raise_confidence():
    assert service.combined_confidence(None, 0.6) == 0.6
    assert service.combined_confidence(0.6, 0.5) == pytest.approx(0.8)
    assert service.combined_confidence(0.8, 0.0) == pytest.approx(0.8)


async def test_a_second_camera_alert_joins_and_raises_the_incidents_confidence(db):
    await seed_wards(db)
    first, joined = await service.join_or_open_from_camera(
        db,
        category="accident",
        lat=CENTRE[0],
        lon=CENTRE[1],
        occurred_at=clock.now(),
        confidence=0.6,
        evidence_media_id=None,
        camera_id="cam-1",
    )
    assert joined is False
    lat, lon = north(CENTRE, 40)
    second, joined = await service.join_or_open_from_camera(
        db,
        category="accident",
        lat=lat,
        lon=lon,
        occurred_at=clock.now(),
        confidence=0.5,
        evidence_media_id=None,
        camera_id="cam-2",
    )
    await db.commit()

    assert (second, joined) == (first, True)
    incident = await db.get(Incident, first)
    assert incident.confidence == pytest.approx(0.8)
