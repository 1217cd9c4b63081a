"""200 submissions at once on PostgreSQL: 200 distinct, gap-free codes; retries with the same
Idempotency-Key (racing the original) create nothing new. The same over two server processes,
and the public look-up's rate limits (per code, per address) under concurrent guessing."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.dossiers.config import get_dossier_settings
from app.dossiers.models import Dossier, DossierEvent, DossierIdempotencyKey
from tests.support.dossiers import Person, birth_body, idem, person, upload_pdf
from tests.support.servers import forwarded_for

SUBMISSIONS = 200
RETRIES = 60


async def test_two_hundred_concurrent_submissions_get_gap_free_codes(
    client: httpx.AsyncClient, db: AsyncSession, backend: str, catalogue: None
) -> None:
    if backend != "postgresql":
        pytest.skip("row-lock concurrency is a PostgreSQL property (SQLite serialises writes)")
    citizens: list[Person] = [await person(client, db, f"091200{i:04d}") for i in range(4)]
    media = {c.id: await upload_pdf(client, c.headers) for c in citizens}

    def request(n: int) -> tuple[Person, str]:
        return citizens[n % len(citizens)], f"concurrency-key-{n:04d}"

    async def send(n: int) -> httpx.Response:
        who, key = request(n)
        return await client.post(
            "/api/v1/dossiers",
            json=birth_body(media[who.id]),
            headers={**who.headers, "Idempotency-Key": key},
        )

    # Originals and retries of the first RETRIES keys, all in flight together.
    calls = [send(n) for n in range(SUBMISSIONS)] + [send(n) for n in range(RETRIES)]
    responses = await asyncio.gather(*calls)
    assert all(r.status_code in (200, 201) for r in responses), {
        r.status_code: r.text for r in responses if r.status_code not in (200, 201)
    }
    assert sum(r.status_code == 201 for r in responses) == SUBMISSIONS
    assert sum(r.status_code == 200 for r in responses) == RETRIES

    codes = [r.json()["code"] for r in responses[:SUBMISSIONS]]
    assert len(set(codes)) == SUBMISSIONS
    # Every retry answered with the dossier its key created.
    for n, retry in enumerate(responses[SUBMISSIONS:]):
        assert retry.json()["code"] == codes[n]
    prefixes = {code.rsplit("-", 1)[0] for code in codes}
    assert len(prefixes) == 1  # one agency, one day
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert numbers == list(range(1, SUBMISSIONS + 1))  # no gaps, no duplicates

    stored = (await db.execute(sa.select(sa.func.count()).select_from(Dossier))).scalar_one()
    keys = (
        await db.execute(sa.select(sa.func.count()).select_from(DossierIdempotencyKey))
    ).scalar_one()
    assert stored == keys == SUBMISSIONS


async def test_two_staff_acting_at_once_cannot_both_win(
    client: httpx.AsyncClient, db: AsyncSession, backend: str, catalogue: None
) -> None:
    if backend != "postgresql":
        pytest.skip("row locks (SELECT ... FOR UPDATE) are a PostgreSQL property")
    citizen = await person(client, db, "0912345678")
    staff = [
        await person(client, db, f"098100{i:04d}", "ward_staff", "TNG-PDP") for i in range(1, 3)
    ]
    media_id = await upload_pdf(client, citizen.headers)
    code = (
        await client.post(
            "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen.headers)
        )
    ).json()["code"]
    answers = await asyncio.gather(
        *[
            client.post(
                f"/api/v1/staff/dossiers/{code}/transitions",
                json={"action": action, "reasons": ["Thiếu giấy tờ"]},
                headers=s.headers,
            )
            for s, action in zip(staff, ("receive", "reject_intake"), strict=True)
        ]
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    events = (await db.execute(sa.select(sa.func.count()).select_from(DossierEvent))).scalar_one()
    assert events == 2  # submit and the one winning action


# ------------------------------------------------ the same limits across two server processes

ACROSS = 80
ACROSS_RETRIES = 30


async def test_codes_and_idempotency_hold_across_two_server_processes(
    client: httpx.AsyncClient, db: AsyncSession, catalogue: None, two_servers: str
) -> None:
    citizens = [await person(client, db, f"091210{i:04d}") for i in range(4)]
    media = {c.id: await upload_pdf(client, c.headers) for c in citizens}

    async def send(http: httpx.AsyncClient, n: int) -> httpx.Response:
        who = citizens[n % len(citizens)]
        return await http.post(
            "/api/v1/dossiers",
            json=birth_body(media[who.id]),
            headers={**who.headers, "Idempotency-Key": f"across-{n:04d}"},
        )

    async with httpx.AsyncClient(base_url=two_servers, timeout=60) as http:
        responses = await asyncio.gather(
            *[send(http, n) for n in range(ACROSS)], *[send(http, n) for n in range(ACROSS_RETRIES)]
        )
    assert sorted({r.status_code for r in responses}) == [200, 201], {
        r.status_code: r.text for r in responses if r.status_code not in (200, 201)
    }
    assert sum(r.status_code == 201 for r in responses) == ACROSS
    codes = [r.json()["code"] for r in responses[:ACROSS]]
    for n, retry in enumerate(responses[ACROSS:]):
        assert retry.json()["code"] == codes[n]
    numbers = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert numbers == list(range(1, ACROSS + 1))
    stored = (await db.execute(sa.select(sa.func.count()).select_from(Dossier))).scalar_one()
    assert stored == ACROSS


async def test_public_lookup_limits_hold_across_two_server_processes(
    client: httpx.AsyncClient, db: AsyncSession, catalogue: None, two_servers: str
) -> None:
    """Guessing the 4 digits of one dossier from many addresses at once, and many codes from
    one address at once: each limit lets through exactly its number of attempts."""
    settings = get_dossier_settings()
    citizen = await person(client, db, "0912345678")
    media_id = await upload_pdf(client, citizen.headers)
    code = (
        await client.post(
            "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen.headers)
        )
    ).json()["code"]
    guesses = settings.public_lookup_per_code_per_hour * 4
    scans = settings.public_lookup_per_ip_per_minute * 3
    async with httpx.AsyncClient(base_url=two_servers, timeout=60) as http:
        by_code = await asyncio.gather(
            *[
                http.get(
                    f"/api/v1/public/dossiers/{code}",
                    params={"phone_last4": f"{n:04d}"},
                    headers=forwarded_for(n),
                )
                for n in range(guesses)
            ]
        )
        by_ip = await asyncio.gather(
            *[
                http.get(
                    f"/api/v1/public/dossiers/TNG-PDP-000000-{n:04d}",
                    params={"phone_last4": "0000"},
                    headers=forwarded_for(1000),
                )
                for n in range(scans)
            ]
        )
    assert sum(r.status_code != 429 for r in by_code) == settings.public_lookup_per_code_per_hour
    assert {r.status_code for r in by_code} == {404, 429}  # "5678" is not among the guesses
    assert sum(r.status_code != 429 for r in by_ip) == settings.public_lookup_per_ip_per_minute


async def test_a_dossier_is_rated_once_however_many_ratings_race(
    client: httpx.AsyncClient, db: AsyncSession, catalogue: None, two_servers: str
) -> None:
    citizen = await person(client, db, "0912345678")
    officer = await person(client, db, "0981000001", "ward_staff", "TNG-PDP")
    media_id = await upload_pdf(client, citizen.headers)
    code = (
        await client.post(
            "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen.headers)
        )
    ).json()["code"]
    result = await upload_pdf(client, officer.headers, purpose="result")
    for body in (
        {"action": "receive"},
        {"action": "approve"},
        {"action": "return_result", "result_media_id": result},
    ):
        done = await client.post(
            f"/api/v1/staff/dossiers/{code}/transitions", json=body, headers=officer.headers
        )
        assert done.status_code == 200, done.text
    async with httpx.AsyncClient(base_url=two_servers, headers=citizen.headers, timeout=60) as http:
        answers = await asyncio.gather(
            *[
                http.post(f"/api/v1/dossiers/{code}/rating", json={"score": 1 + n % 5})
                for n in range(20)
            ]
        )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 19
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"dossier.already_rated"}
    rated = (
        await db.execute(
            sa.select(sa.func.count())
            .select_from(DossierEvent)
            .where(DossierEvent.action == "rate")
        )
    ).scalar_one()
    assert rated == 1
