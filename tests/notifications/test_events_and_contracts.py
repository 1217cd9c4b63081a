"""Events of the other domains render through templates, and every push matches its schema."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pydantic
import pytest
from firebase_admin import messaging

from app.core import clock
from app.core.jobs import enqueue
from app.notifications import service, templates
from app.notifications.backends import build_messages, encode
from tests.notifications.contracts import assert_valid_push, validator
from tests.notifications.helpers import account, add_device, inbox_rows, pushes
from tests.support.flows import run_jobs

EVENTS = {
    "dossier.status_changed": {
        "dossier_id": "0193a1b2-0000-7000-8000-000000000001",
        "dossier_code": "TNG-PDP-2026-000042",
        "status": "received",
        "procedure_name": "Đăng ký khai sinh",
        "procedure_name_en": "Birth registration",
        "appointment_date": "2026-12-02",
    },
    "incident.status_changed": {
        "incident_id": "0193a1b2-0000-7000-8000-000000000002",
        "status": "verified",
        "incident_title": "Ổ gà đường Z115",
    },
    "camera.alert": {
        "incident_id": "0193a1b2-0000-7000-8000-000000000003",
        "alert_type": "accident",
        "camera_name": "Ngã tư Đồng Quang",
    },
    "traffic.warning": {
        "incident_id": "0193a1b2-0000-7000-8000-000000000004",
        "alert_type": "flooding",
        "place": "Cầu Gia Bẩy",
    },
}


async def test_producer_jobs_reach_inbox_and_every_push_matches_its_schema(
    client, db, push_log, wards
) -> None:
    citizen = await account(client, db, "0915000001", ward="TNG-PDP")
    staff = await account(client, db, "0915000002", role="ward_staff", ward="TNG-PDP")
    other_staff = await account(client, db, "0915000003", role="ward_staff", ward="TNG-GS")
    for i, platform in enumerate(("android", "ios", "web")):
        await add_device(client, citizen, f"citizen-{platform}", platform=platform)
        await add_device(client, staff, f"staff-{platform}-{i}", platform=platform)
    await add_device(client, other_staff, "other-ward-staff")
    # Exactly the jobs the dossiers, incidents and cameras domains put in the outbox.
    await enqueue(
        db,
        "dossier.status_changed",
        {"user_id": str(citizen.id), **EVENTS["dossier.status_changed"]},
    )
    await enqueue(
        db,
        "incident.status_changed",
        {"user_ids": [str(citizen.id)], **EVENTS["incident.status_changed"]},
    )
    await enqueue(db, "camera.alert", {"ward_code": "TNG-PDP", **EVENTS["camera.alert"]})
    await enqueue(
        db, "traffic.warning", {"user_ids": [str(citizen.id)], **EVENTS["traffic.warning"]}
    )
    await db.commit()
    await run_jobs()

    sent = pushes(push_log)
    assert len(sent) == 3 * 3 + 3  # three citizen kinds on 3 devices, the alert on 3 staff ones
    kinds = [assert_valid_push(message) for message in sent]
    assert sorted(set(kinds)) == sorted(EVENTS)
    assert not [m for m in sent if m["token"] == "other-ward-staff"]
    by_platform = {m["token"]: m for m in sent if m["data"]["kind"] == "traffic.warning"}
    assert by_platform["citizen-android"]["android"]["priority"] == "high"
    assert (
        by_platform["citizen-android"]["android"]["notification"]["channel_id"] == "traffic_alerts"
    )
    assert by_platform["citizen-ios"]["apns"]["headers"]["apns-priority"] == "10"
    assert by_platform["citizen-web"]["webpush"]["headers"]["Urgency"] == "high"
    dossier = next(
        m
        for m in sent
        if m["data"]["kind"] == "dossier.status_changed" and m["token"] == "citizen-ios"
    )
    assert dossier["apns"]["headers"]["apns-priority"] == "5"
    assert (
        dossier["apns"]["headers"]["apns-collapse-id"]
        == "dossier-0193a1b2-0000-7000-8000-000000000001"
    )
    assert dossier["notification"]["body"] == (
        "Hồ sơ TNG-PDP-2026-000042 (Đăng ký khai sinh) đã được tiếp nhận. "
        "Ngày hẹn trả kết quả: 2026-12-02."
    )

    inbox = await inbox_rows(citizen.id)
    assert sorted(n.kind for n in inbox) == sorted(
        ["dossier.status_changed", "incident.status_changed", "traffic.warning"]
    )
    assert {n.deep_link for n in inbox} == {
        m["data"]["deep_link"] for m in sent if m["token"].startswith("citizen-")
    }
    assert [n.kind for n in await inbox_rows(staff.id)] == ["camera.alert"]
    assert await inbox_rows(other_staff.id) == []


async def test_a_producer_event_sent_twice_is_told_once(client, db, push_log) -> None:
    citizen = await account(client, db, "0915000004")
    await add_device(client, citizen, "tok-once")
    for _ in range(2):
        await enqueue(
            db,
            "dossier.status_changed",
            {"user_id": str(citizen.id), "event_id": "evt-77", **EVENTS["dossier.status_changed"]},
        )
    await db.commit()
    await run_jobs()
    assert len(await inbox_rows(citizen.id)) == 1
    assert len(pushes(push_log)) == 1


async def test_events_for_erased_or_unknown_accounts_are_dropped_quietly(db, push_log) -> None:
    await enqueue(
        db,
        "dossier.status_changed",
        {"user_id": "0193a1b2-0000-7000-8000-0000000000ff", **EVENTS["dossier.status_changed"]},
    )
    await db.commit()
    await run_jobs()
    assert pushes(push_log) == []


# Kinds that other domains register with their own templates (e.g. app.cameras.notices).
OTHER_DOMAIN_SAMPLES = {
    "camera.offline": {
        "camera_id": "0193a1b2-0000-7000-8000-0000000000c1",
        "camera_code": "CAM-PDP-01",
        "camera_name": "Z115",
        "ward_code": "TNG-PDP",
        "offline_since": "2026-11-25T08:00:00+00:00",
    },
}


@pytest.mark.parametrize("kind", sorted(templates.TEMPLATES))
@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_template_renders_every_label_in_both_languages(kind: str, language: str) -> None:
    template = templates.TEMPLATES[kind]
    base = (
        EVENTS.get(kind)
        or OTHER_DOMAIN_SAMPLES.get(kind)
        or {
            "announcement_id": "0193a1b2-0000-7000-8000-000000000005",
            "title_vi": "Cắt điện",
            "body_vi": "Cắt điện từ 8h đến 11h.",
            "title_en": "Power cut",
            "body_en": "No power 8-11am.",
        }
    )
    # Citizen-written text (titles, place names) stays as written; here it is ASCII so that any
    # Vietnamese left in an English text can only come from the template.
    base = {**base, **{k: "Z115" for k in ("incident_title", "place", "camera_name") if k in base}}
    variants = [base]
    if "status" in base:
        table = (
            templates.DOSSIER_STATUS if kind.startswith("dossier") else templates.INCIDENT_STATUS
        )
        variants = [{**base, "status": s} for s in [*table, "some_new_status"]]
    if "alert_type" in base:
        variants = [{**base, "alert_type": a} for a in [*templates.ALERT_TYPES, "meteor"]]
    for raw in variants:
        rendered = template.render(template.params.model_validate(raw), language)
        assert rendered.title and rendered.body
        assert "{" not in rendered.title + rendered.body  # no placeholder left behind
        if language == "en":
            assert not any(ch in rendered.body for ch in "ạảấầẩẫậắằẳẵặđ"), rendered.body


def test_notify_refuses_unknown_kinds_and_missing_parameters() -> None:
    with pytest.raises(ValueError, match="no notification template"):
        templates.get("weather.forecast")
    with pytest.raises(pydantic.ValidationError):
        templates.get("dossier.status_changed").params.model_validate({"status": "received"})


def test_every_payload_kind_has_a_valid_schema() -> None:
    for kind in [*templates.TEMPLATES, "message"]:
        assert validator(kind).schema["$schema"].endswith("2020-12/schema")


async def test_notify_is_part_of_the_callers_transaction(client, db, push_log) -> None:
    citizen = await account(client, db, "0915000005")
    await add_device(client, citizen, "tok-rollback")
    citizen_id = citizen.id
    await service.notify(
        db, [citizen_id], "dossier.status_changed", EVENTS["dossier.status_changed"]
    )
    await db.rollback()  # the producer's change failed: nothing may be told
    await run_jobs()
    assert await inbox_rows(citizen_id) == []
    assert pushes(push_log) == []


def test_messages_built_from_shared_parts_are_the_messages_firebase_admin_builds() -> None:
    """Fan-out messages share everything but token and data: each still encodes exactly as a
    `messaging.Message` built field by field, and carries its own token and data."""
    notes = [
        SimpleNamespace(
            kind="announcement", category="ward_announcements", urgent=urgent, title=title,
            body="Nội dung", collapse_key="announcement-a1", ttl_seconds=3600,
            data={"kind": "announcement", "notification_id": f"n-{i}", "urgent": str(urgent)},
        )
        for i, (title, urgent) in enumerate([("Tiêu đề", False), ("Khẩn", True)] * 3)
    ]  # fmt: skip
    devices = [
        SimpleNamespace(token=f"tok-{i}", platform=platform)
        for i, platform in enumerate(["android", "ios", "web"] * 2)
    ]
    pairs = list(zip(notes, devices, strict=True))
    at = clock.now()
    messages = build_messages(pairs, at=at)
    for (note, device), message in zip(pairs, messages, strict=True):
        assert isinstance(message, messaging.Message)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            by_hand = messaging.Message(
                token=message.token, data=message.data, notification=message.notification,
                android=message.android, apns=message.apns, webpush=message.webpush,
                fcm_options=message.fcm_options,
            )  # fmt: skip
        assert encode(message) == encode(by_hand)
        wire = encode(message)
        assert wire["token"] == device.token and wire["data"] == note.data
        assert wire["notification"] == {"title": note.title, "body": "Nội dung"}
        headers = {"android": "android", "ios": "apns", "web": "webpush"}[device.platform]
        assert set(wire) >= {headers, "fcm_options"}
    expires = {
        encode(m)["apns"]["headers"]["apns-expiration"] for m in messages if m.apns is not None
    }
    assert expires == {str(int(at.timestamp()) + 3600)}
