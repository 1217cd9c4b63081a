"""Files, forms and people for the dossiers and media tests."""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from tests.support.flows import bearer, login, make_user


def pdf_bytes(size: int = 0) -> bytes:
    """A small well-formed PDF, padded with a comment to `size` bytes if asked."""
    body = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    trailer = b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    padding = max(0, size - len(body) - len(trailer))
    return body + (b"%" + b"x" * (padding - 2) + b"\n" if padding >= 2 else b"") + trailer


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def jpeg_bytes() -> bytes:
    return (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\x00" * 64
        + b"\xff\xd9"
    )


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "scan.pdf",
    content_type: str = "application/pdf",
    purpose: str | None = None,
) -> httpx.Response:
    data = {"purpose": purpose} if purpose else {}
    return await client.post(
        "/api/v1/media",
        headers=headers,
        data=data,
        files={"file": (filename, content, content_type)},
    )


async def upload_pdf(client: httpx.AsyncClient, headers: dict[str, str], **kwargs: Any) -> str:
    response = await upload(client, headers, pdf_bytes(), **kwargs)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def idem(headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers with a fresh Idempotency-Key (one per new dossier)."""
    return {**headers, "Idempotency-Key": f"test-{uuid.uuid4().hex}"}


def birth_form(**child: Any) -> dict[str, Any]:
    return {
        "child": {
            "full_name": "Nguyễn Minh Khôi",
            "gender": "male",
            "date_of_birth": "2027-01-20",
            "place_of_birth": "Bệnh viện A Thái Nguyên",
            **child,
        },
        "mother": {"full_name": "Trần Thị Mai", "cccd": "019190000123"},
        "applicant_relation": "mother",
    }


def birth_body(media_id: str, ward: str = "TNG-PDP", **extra: Any) -> dict[str, Any]:
    return {
        "procedure_code": "1.001193",
        "ward_code": ward,
        "form": birth_form(),
        "documents": [{"document_code": "giay_chung_sinh", "media_id": media_id}],
        **extra,
    }


@dataclass
class Person:
    id: str
    phone: str
    headers: dict[str, str]


async def person(
    client: httpx.AsyncClient,
    db: AsyncSession,
    phone: str,
    role: str = "citizen",
    ward: str | None = None,
    name: str = "Nguyễn Văn An",
) -> Person:
    user = await make_user(db, phone, role, ward, full_name=name)
    tokens = await login(client, phone)
    return Person(id=str(user.id), phone=user.phone or "", headers=bearer(tokens))


async def travel_to(client: httpx.AsyncClient, local: datetime, *people: Person) -> None:
    """Move the service clock to a local (Asia/Ho_Chi_Minh) wall time; `people` sign in again
    there (access tokens live 15 minutes)."""
    clock.reset()
    target = local.replace(tzinfo=clock.LOCAL_TZ)
    clock.advance(target - clock.now())
    for someone in people:
        someone.headers.update(bearer(await login(client, "0" + someone.phone[3:])))
