"""Dossiers and files in the citizen's export and erasure (Law 91/2025)."""

from __future__ import annotations

import json

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.dossiers.models import Dossier
from app.media.config import get_media_settings
from app.media.models import MediaObject
from tests.support.dossiers import Person, birth_body, idem, upload_pdf
from tests.support.flows import PASSWORD


async def test_export_has_my_dossiers_and_files(client: httpx.AsyncClient, citizen: Person) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    code = (
        await client.post(
            "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen.headers)
        )
    ).json()["code"]
    export = (await client.get("/api/v1/me/export", headers=citizen.headers)).json()
    assert [d["code"] for d in export["dossiers"]] == [code]
    assert export["dossiers"][0]["form"]["mother"]["full_name"] == "Trần Thị Mai"
    assert [m["id"] for m in export["media"]] == [media_id]
    assert "storage_key" not in export["media"][0]


async def test_erasure_keeps_dossier_records_and_their_files_but_deletes_loose_files(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person
) -> None:
    attached = await upload_pdf(client, citizen.headers)
    loose = await upload_pdf(client, citizen.headers)
    await client.post("/api/v1/dossiers", json=birth_body(attached), headers=idem(citizen.headers))
    response = await client.request(
        "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=citizen.headers
    )
    assert response.status_code == 200, response.text
    kept = " ".join(r["data"] for r in response.json()["retained"])
    assert "dossiers" in kept and "documents attached" in kept
    remaining = {str(m.id): m for m in (await db.execute(sa.select(MediaObject))).scalars()}
    assert set(remaining) == {attached}
    assert (get_media_settings().media_dir / remaining[attached].storage_key).exists()
    dossier = (await db.execute(sa.select(Dossier))).scalar_one()
    assert dossier.status == "withdrawn"  # nobody is left to receive a result
    assert loose not in remaining


def from_office(app: object) -> httpx.AsyncClient:
    """A staff member's requests, from the ward office's address."""
    transport = httpx.ASGITransport(app=app, client=("10.20.30.40", 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_citizens_export_holds_no_staff_members_personal_data(
    app: object, client: httpx.AsyncClient, citizen: Person, pdp_staff: Person
) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    code = (
        await client.post(
            "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen.headers)
        )
    ).json()["code"]
    staff_url = f"/api/v1/staff/dossiers/{code}"
    async with from_office(app) as office:
        assert (await office.get(staff_url, headers=pdp_staff.headers)).status_code == 200
        for body in ({"action": "receive"}, {"action": "assign", "assignee_id": pdp_staff.id}):
            answer = await office.post(
                f"{staff_url}/transitions", json=body, headers=pdp_staff.headers
            )
            assert answer.status_code == 200, answer.text

    export = (await client.get("/api/v1/me/export", headers=citizen.headers)).json()
    everything = json.dumps(export)
    assert "10.20.30.40" not in everything  # the office's address
    assert pdp_staff.id not in everything  # the staff member's account
    # What was done with the citizen's data stays in the export.
    assert {"dossiers.staff_read", "dossiers.receive", "dossiers.assign"} <= {
        e["action"] for e in export["account"]["audit_log"]
    }
    assert [e["action"] for e in export["dossiers"][0]["timeline"]] == [
        "submit",
        "receive",
        "assign",
    ]
    # Staff still see who handles it.
    async with from_office(app) as office:
        seen = (await office.get(staff_url, headers=pdp_staff.headers)).json()
    assert seen["assignee_id"] == pdp_staff.id
