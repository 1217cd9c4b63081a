"""The procedure catalogue and its diacritics-insensitive search."""

from __future__ import annotations

import httpx
import pytest

from app.dossiers.catalogue import PROCEDURES


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("dang ky khai sinh", "1.001193"),
        ("Đăng ký khai sinh", "1.001193"),
        ("DANG KY KHAI TU", "1.000656"),
        ("ket hon", "1.000894"),
        ("tinh trang hon nhan", "1.004873"),
        ("chung thuc ban sao", "2.000815"),
        ("birth registration", "1.001193"),
        ("1.001193", "1.001193"),
    ],
)
async def test_search_ignores_diacritics_and_case(
    client: httpx.AsyncClient, catalogue: None, query: str, expected: str
) -> None:
    response = await client.get("/api/v1/procedures", params={"q": query})
    assert response.status_code == 200
    codes = [p["code"] for p in response.json()]
    assert expected in codes
    if query.lower().startswith("dang ky khai sinh"):
        assert codes == ["1.001193"]


async def test_search_without_query_lists_the_catalogue(
    client: httpx.AsyncClient, catalogue: None
) -> None:
    response = await client.get("/api/v1/procedures")
    assert {p["code"] for p in response.json()} == {p["code"] for p in PROCEDURES}
    nothing = await client.get("/api/v1/procedures", params={"q": "100% _nothing_"})
    assert nothing.status_code == 200 and nothing.json() == []


async def test_procedure_detail_has_documents_fee_time_and_form_schema(
    client: httpx.AsyncClient, catalogue: None
) -> None:
    response = await client.get("/api/v1/procedures/1.001193")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Đăng ký khai sinh" and body["name_en"] == "Birth registration"
    assert body["competent_level"] == "ward" and body["online_level"] == "full"
    assert body["processing_days"] == 1 and body["fee_vnd"] == 0
    assert body["documents"][0]["code"] == "giay_chung_sinh"
    assert "application/pdf" in body["documents"][0]["formats"]
    assert body["form_schema"]["required"] == ["child", "mother", "applicant_relation"]
    province = (await client.get("/api/v1/procedures/2.000488")).json()
    assert province["competent_level"] == "province"


async def test_unknown_procedure_is_404(client: httpx.AsyncClient, catalogue: None) -> None:
    response = await client.get("/api/v1/procedures/9.999999")
    assert response.status_code == 404
    assert response.json()["code"] == "dossier.procedure_not_found"


def test_every_seeded_form_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    for procedure in PROCEDURES:
        Draft202012Validator.check_schema(procedure["form_schema"])
        assert procedure["competent_level"] in {"ward", "province"}
        assert procedure["processing_days"] >= 1


async def test_catalogue_sync_is_idempotent_and_updates_in_place(
    db,
    catalogue: None,  # type: ignore[no-untyped-def]
) -> None:
    import sqlalchemy as sa

    from app.dossiers.models import Procedure
    from app.dossiers.service import sync_catalogue

    await db.execute(
        sa.update(Procedure).where(Procedure.code == "1.001193").values(name="cũ", search_text="cu")
    )
    await sync_catalogue(db)
    await db.commit()
    rows = (await db.execute(sa.select(Procedure))).scalars().all()
    assert len(rows) == len(PROCEDURES)
    birth = next(p for p in rows if p.code == "1.001193")
    await db.refresh(birth)
    assert birth.name == "Đăng ký khai sinh" and birth.search_text.startswith("1.001193 dang ky")
