"""Delivery through the real firebase-admin client to the fake FCM, over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.core import clock
from app.core.jobs import Job
from app.notifications import service
from app.notifications.delivery import RETRY_JOB
from tests.notifications.contracts import assert_valid_push
from tests.notifications.helpers import account, add_device, deliveries, devices_of, fresh
from tests.support.flows import run_jobs

PARAMS = {"dossier_id": "d-fcm", "dossier_code": "HS-1", "status": "approved"}


async def _tell(db, user_id) -> None:
    await service.notify(db, [user_id], "dossier.status_changed", PARAMS)
    await db.commit()


async def _retry_job() -> Job:
    [job] = await fresh(sa.select(Job).where(Job.kind == RETRY_JOB, Job.status == "pending"))
    return job


async def test_push_arrives_at_fcm_valid_against_its_schema(client, db, fake_fcm) -> None:
    an = await account(client, db, "0916000001")
    await add_device(client, an, "fcm-android", platform="android")
    await add_device(client, an, "fcm-ios", platform="ios")
    await _tell(db, an.id)
    await run_jobs()
    received = await fake_fcm.messages()
    assert sorted(m["token"] for m in received) == ["fcm-android", "fcm-ios"]
    for message in received:
        assert assert_valid_push(message) == "dossier.status_changed"
    android = next(m for m in received if m["token"] == "fcm-android")["android"]
    assert android["collapse_key"] == "dossier-d-fcm" and android["ttl"] == "604800s"
    rows = await deliveries()
    assert {r.status for r in rows} == {"sent"}
    assert all(
        r.message_id and r.message_id.startswith("projects/demo-thainguyen/messages/") for r in rows
    )


async def test_unregistered_and_invalid_tokens_are_removed(client, db, fake_fcm) -> None:
    an = await account(client, db, "0916000002")
    await add_device(client, an, "fcm-stale")
    await add_device(client, an, "fcm-garbled")
    await add_device(client, an, "fcm-good")
    await fake_fcm.rule(token="fcm-stale", errors=["UNREGISTERED"], sticky=True)
    await fake_fcm.rule(token="fcm-garbled", errors=["INVALID_ARGUMENT"], sticky=True)
    await _tell(db, an.id)
    await run_jobs()
    assert [d.token for d in await devices_of(an.id)] == ["fcm-good"]
    statuses = sorted((r.status, r.error_code) for r in await deliveries())
    assert statuses == [
        ("invalid", "INVALID_ARGUMENT"),
        ("sent", None),
        ("unregistered", "UNREGISTERED"),
    ]


async def test_unavailable_is_retried_after_retry_after_and_then_succeeds(
    client, db, fake_fcm
) -> None:
    an = await account(client, db, "0916000003")
    await add_device(client, an, "fcm-flaky")
    await fake_fcm.rule(token="fcm-flaky", errors=["UNAVAILABLE"], retry_after=30)
    await _tell(db, an.id)
    started = clock.now()
    await run_jobs()
    [row] = await deliveries()
    assert row.status == "retrying" and row.error_code == "UNAVAILABLE"
    job = await _retry_job()
    assert job.run_after >= started + timedelta(seconds=30)  # Retry-After honoured
    await run_jobs()
    assert (await deliveries())[0].status == "retrying"  # not due yet: nothing sent early
    clock.advance(timedelta(seconds=40))
    await run_jobs()
    [row] = await deliveries()
    assert row.status == "sent" and row.attempts == 2 and row.message_id
    assert len(await fake_fcm.messages("fcm-flaky")) == 1
    assert [d.token for d in await devices_of(an.id)] == ["fcm-flaky"]


async def test_quota_exceeded_and_internal_back_off_then_deliver(client, db, fake_fcm) -> None:
    an = await account(client, db, "0916000004")
    await add_device(client, an, "fcm-quota")
    await add_device(client, an, "fcm-internal")
    await fake_fcm.rule(
        token="fcm-quota", errors=["QUOTA_EXCEEDED", "QUOTA_EXCEEDED"], retry_after=5
    )
    await fake_fcm.rule(token="fcm-internal", errors=["INTERNAL"])
    await _tell(db, an.id)
    for _ in range(4):
        await run_jobs()
        clock.advance(timedelta(seconds=60))
    rows = {r.device_id: r for r in await deliveries()}
    assert {r.status for r in rows.values()} == {"sent"}
    assert sorted(r.attempts for r in rows.values()) == [2, 3]


async def test_a_token_that_never_recovers_fails_after_max_attempts(
    client, db, fake_fcm, settings_env
) -> None:
    settings_env.set(push_max_attempts=3)
    an = await account(client, db, "0916000005")
    await add_device(client, an, "fcm-down-forever")
    await fake_fcm.rule(token="fcm-down-forever", errors=["UNAVAILABLE"], sticky=True)
    await _tell(db, an.id)
    for _ in range(5):
        await run_jobs()
        clock.advance(timedelta(minutes=30))
    [row] = await deliveries()
    assert row.status == "failed" and row.attempts == 3 and row.error_code == "UNAVAILABLE"
    # A transient failure never removes the token.
    assert [d.token for d in await devices_of(an.id)] == ["fcm-down-forever"]


async def test_token_endpoint_down_holds_the_batch_for_a_retry(client, db, fake_fcm) -> None:
    an = await account(client, db, "0916000006")
    await add_device(client, an, "fcm-auth-1")
    await add_device(client, an, "fcm-auth-2")
    # 400 rather than 503: google-auth retries a 503 itself, with real sleeps.
    await fake_fcm.fail_token_endpoint(times=1, status=400)
    await _tell(db, an.id)
    await run_jobs()
    rows = await deliveries()
    assert {(r.status, r.error_code) for r in rows} == {("retrying", "AUTH_UNAVAILABLE")}
    clock.advance(timedelta(seconds=10))
    await run_jobs()
    assert {r.status for r in await deliveries()} == {"sent"}
    assert len(await fake_fcm.messages()) == 2


async def test_large_batches_are_split_and_every_device_is_reached(
    client, db, fake_fcm, settings_env
) -> None:
    settings_env.set(push_batch_size=3)
    an = await account(client, db, "0916000007")
    for i in range(7):
        await add_device(client, an, f"fcm-many-{i}")
    await _tell(db, an.id)
    await run_jobs()
    assert len(await fake_fcm.messages()) == 7
    assert {r.status for r in await deliveries()} == {"sent"}


async def test_a_token_removed_while_waiting_for_a_retry_is_not_retried(
    client, db, fake_fcm
) -> None:
    an = await account(client, db, "0916000008")
    await add_device(client, an, "fcm-gone")
    await fake_fcm.rule(token="fcm-gone", errors=["UNAVAILABLE"])
    await _tell(db, an.id)
    await run_jobs()
    await client.delete("/api/v1/devices/fcm-gone", headers=an.headers)
    clock.advance(timedelta(minutes=5))
    await run_jobs()
    [row] = await deliveries()
    assert row.status == "cancelled"
    assert await fake_fcm.messages("fcm-gone") == []


async def test_the_library_http_client_delivers_and_sorts_answers_as_well(
    client, db, fake_fcm, settings_env
) -> None:
    """FCM_HTTP_CLIENT=library: firebase-admin's own httpx client, the operator's way back."""
    settings_env.set(fcm_http_client="library")
    an = await account(client, db, "0916000009")
    await add_device(client, an, "lib-good")
    await add_device(client, an, "lib-stale")
    await fake_fcm.rule(token="lib-stale", errors=["UNREGISTERED"], sticky=True)
    await _tell(db, an.id)
    await run_jobs()
    assert [m["token"] for m in await fake_fcm.messages()] == ["lib-good"]
    assert [d.token for d in await devices_of(an.id)] == ["lib-good"]
    assert sorted(r.status for r in await deliveries()) == ["sent", "unregistered"]
