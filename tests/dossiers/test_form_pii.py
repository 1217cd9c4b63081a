"""CCCD numbers typed into dossier forms are encrypted at rest, like the account's own: a copy of
the database (a backup, a replica, a leaked dump) shows none; the citizen and ward staff still
read them, staff reads audited."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.core.audit import AuditEvent
from app.core.db import UTCDateTime
from app.dossiers import form_pii
from tests.support import databases
from tests.support.dossiers import Person, birth_body, idem, upload_pdf

MOTHER_CCCD = "019190000123"  # tests.support.dossiers.birth_form
MIGRATION = "a1d5c0f3e7b2"


async def stored_form(db: AsyncSession, code: str) -> dict[str, Any]:
    """The form as the database holds it (what a dump would show)."""
    raw = (
        await db.execute(sa.text("SELECT form FROM dossiers WHERE code = :code"), {"code": code})
    ).scalar_one()
    return json.loads(raw) if isinstance(raw, str) else raw


async def test_a_cccd_typed_into_a_form_is_stored_encrypted_and_shown_as_typed(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    media_id = await upload_pdf(client, citizen.headers)
    created = await client.post(
        "/api/v1/dossiers", json=birth_body(media_id), headers=idem(citizen.headers)
    )
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    assert created.json()["form"]["mother"]["cccd"] == MOTHER_CCCD

    stored = await stored_form(db, code)
    assert MOTHER_CCCD not in json.dumps(stored)
    assert stored["mother"]["cccd"].startswith("v1.")
    assert stored["mother"]["full_name"] == "Trần Thị Mai"  # only identity numbers are sealed

    mine = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert mine["form"]["mother"]["cccd"] == MOTHER_CCCD
    staff = await client.get(f"/api/v1/staff/dossiers/{code}", headers=pdp_staff.headers)
    assert staff.json()["form"]["mother"]["cccd"] == MOTHER_CCCD
    reads = (
        (
            await db.execute(
                sa.select(AuditEvent).where(
                    AuditEvent.action == "dossiers.staff_read",
                    AuditEvent.actor_id == uuid.UUID(pdp_staff.id),
                )
            )
        )
        .scalars()
        .all()
    )
    assert [r.resource for r in reads] == [f"dossier:{code}"]
    export = (await client.get("/api/v1/me/export", headers=citizen.headers)).json()
    assert export["dossiers"][0]["form"]["mother"]["cccd"] == MOTHER_CCCD


def test_a_sealed_number_opens_only_in_its_own_dossier() -> None:
    schema = {
        "type": "object",
        "properties": {"cccd": {"type": "string", "x-pii": "cccd"}, "note": {"type": "string"}},
    }
    mine, other = uuid.uuid4(), uuid.uuid4()
    sealed = form_pii.seal(schema, {"cccd": MOTHER_CCCD, "note": "v1.looks-sealed"}, mine)
    assert sealed["cccd"] != MOTHER_CCCD and sealed["note"] == "v1.looks-sealed"
    assert form_pii.unseal(sealed, mine) == {"cccd": MOTHER_CCCD, "note": "v1.looks-sealed"}
    # Copied into another dossier's row, it stays sealed.
    assert form_pii.unseal(sealed, other)["cccd"] == sealed["cccd"]


@pytest.fixture(params=databases.backends())
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    url = await databases.create_database(request.param, tmp_path)
    try:
        yield url
    finally:
        await databases.drop_database(url)


async def _alembic(action: Any, url: str, revision: str) -> None:
    await asyncio.to_thread(action, databases.alembic_config(url), revision)


async def test_the_migration_encrypts_the_numbers_of_forms_stored_in_clear(
    fresh_url: str,
) -> None:
    before = (
        ScriptDirectory.from_config(databases.alembic_config(fresh_url))
        .get_revision(MIGRATION)
        .down_revision
    )
    await _alembic(command.upgrade, fresh_url, str(before))
    dossier_id = uuid.uuid4()
    form = {
        "bride": {"full_name": "Lê Thị Hoa", "cccd": "019190000777"},
        "groom": {"full_name": "Đỗ Văn Nam", "cccd": "019090000888"},
    }
    engine = create_async_engine(fresh_url)
    table = sa.table("dossiers", sa.column("id", sa.Uuid()), sa.column("form", sa.JSON()))

    async def read() -> Any:
        async with engine.connect() as connection:
            return (await connection.execute(sa.select(table.c.form))).scalar_one()

    try:
        async with engine.begin() as connection:
            # Only the columns the migration reads: foreign keys off for this fixture row.
            if fresh_url.startswith("postgresql"):
                await connection.execute(sa.text("SET session_replication_role = replica"))
            await connection.execute(
                sa.text(
                    "INSERT INTO dossiers (id, code, procedure_code, citizen_id, agency_code,"
                    " status, form, period, submitted_at, paused_workdays, supplement_requests,"
                    " extensions, supplement_documents, outcome_reasons, updated_at)"
                    " VALUES (:id, 'X', 'P', :u, 'W', 'submitted', :form, '2026-12', :t, 0, 0, 0,"
                    " '[]', '[]', :t)"
                ).bindparams(
                    sa.bindparam("id", type_=sa.Uuid()),
                    sa.bindparam("u", type_=sa.Uuid()),
                    sa.bindparam("form", type_=sa.JSON()),
                    sa.bindparam("t", type_=UTCDateTime()),
                ),
                {
                    "id": dossier_id,
                    "u": uuid.uuid4(),
                    "form": form,
                    "t": datetime(2026, 12, 8, tzinfo=UTC),
                },
            )

        await _alembic(command.upgrade, fresh_url, MIGRATION)
        sealed = await read()
        assert "019190000777" not in json.dumps(sealed)
        assert "019090000888" not in json.dumps(sealed)
        assert form_pii.unseal(sealed, dossier_id) == form  # what the service then shows

        await _alembic(command.downgrade, fresh_url, str(before))
        assert await read() == form
    finally:
        await engine.dispose()
