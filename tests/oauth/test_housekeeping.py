from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.core import clock
from app.core.db import session_factory
from app.core.jobs import load_job_modules, schedule_periodic
from app.oauth.models import AuthorizationRequest, RevokedAccessToken, UsedJti
from tests.oauth.support import make_client
from tests.support.flows import run_jobs


async def test_expired_one_time_values_and_requests_are_purged_hourly(db):
    client = await make_client(db)
    now = clock.now()
    db.add_all(
        [
            UsedJti(key="old-proof", expires_at=now - timedelta(minutes=1)),
            UsedJti(key="live-proof", expires_at=now + timedelta(minutes=5)),
            AuthorizationRequest(
                id="old-request",
                client_id=client.client.id,
                params={},
                expires_at=now - timedelta(minutes=1),
            ),
            AuthorizationRequest(
                id="live-request",
                client_id=client.client.id,
                params={},
                expires_at=now + timedelta(minutes=5),
            ),
            RevokedAccessToken(jti="old-jti", expires_at=now - timedelta(minutes=1)),
        ]
    )
    await db.commit()

    load_job_modules()
    await schedule_periodic(session_factory(), {})
    await run_jobs()

    assert set((await db.execute(sa.select(UsedJti.key))).scalars()) == {"live-proof"}
    assert set((await db.execute(sa.select(AuthorizationRequest.id))).scalars()) == {"live-request"}
    assert (await db.execute(sa.select(RevokedAccessToken))).first() is None
