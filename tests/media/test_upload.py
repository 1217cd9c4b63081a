"""Multipart upload: judged by bytes, limited while streaming, kept per owner."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.media.config import get_media_settings
from app.media.models import MediaObject
from tests.conftest import count
from tests.support.dossiers import Person, jpeg_bytes, pdf_bytes, png_bytes, upload


def staging_files() -> list[Path]:
    staging = get_media_settings().media_dir / "staging"
    return list(staging.glob("*")) if staging.exists() else []


@pytest.mark.parametrize(
    ("content", "filename", "declared", "detected"),
    [
        (pdf_bytes(), "giay-chung-sinh.pdf", "application/pdf", "application/pdf"),
        (png_bytes(), "anh.png", "image/png", "image/png"),
        (jpeg_bytes(), "anh.jpg", "image/jpeg", "image/jpeg"),
        # Phones often declare nothing useful: the bytes decide.
        (pdf_bytes(), "scan", "application/octet-stream", "application/pdf"),
    ],
)
async def test_upload_is_typed_by_its_bytes_and_read_back_by_its_owner(
    client: httpx.AsyncClient,
    owner: Person,
    content: bytes,
    filename: str,
    declared: str,
    detected: str,
) -> None:
    response = await upload(client, owner.headers, content, filename, declared)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == detected
    assert body["size_bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    back = await client.get(f"/api/v1/media/{body['id']}/content", headers=owner.headers)
    assert back.status_code == 200
    assert back.content == content
    assert back.headers["content-type"].startswith(detected)
    assert staging_files() == []


async def test_file_is_stored_under_media_dir(
    client: httpx.AsyncClient, owner: Person, db: AsyncSession
) -> None:
    response = await upload(client, owner.headers, pdf_bytes())
    media = await db.get(MediaObject, uuid.UUID(response.json()["id"]))
    assert media is not None and media.storage_backend == "local"
    stored = get_media_settings().media_dir / media.storage_key
    assert stored.read_bytes() == pdf_bytes()


@pytest.mark.parametrize(
    ("content", "filename", "declared", "code", "status"),
    [
        (
            b"MZ\x90\x00" + b"\x00" * 200,
            "virus.pdf",
            "application/pdf",
            "media.unsupported_type",
            415,
        ),
        (b"hello, plain text", "note.txt", "text/plain", "media.unsupported_type", 415),
        (b"GIF89a" + b"\x00" * 100, "a.gif", "image/gif", "media.unsupported_type", 415),
        (pdf_bytes(), "scan.png", "application/octet-stream", "media.type_mismatch", 415),
        (pdf_bytes(), "scan.pdf", "image/png", "media.type_mismatch", 415),
        (png_bytes(), "scan.jpg", "image/jpeg", "media.type_mismatch", 415),
        (pdf_bytes()[:-8], "cut.pdf", "application/pdf", "media.corrupt", 422),
        (png_bytes() + b"<script>", "polyglot.png", "image/png", "media.corrupt", 422),
        (b"", "empty.pdf", "application/pdf", "media.empty_file", 422),
        (
            pdf_bytes().replace(
                b"<< /Type /Catalog >>",
                b"<< /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>",
            ),
            "form.pdf",
            "application/pdf",
            "media.active_content",
            422,
        ),
    ],
)
async def test_refused_files_leave_nothing_behind(
    client: httpx.AsyncClient,
    owner: Person,
    db: AsyncSession,
    content: bytes,
    filename: str,
    declared: str,
    code: str,
    status: int,
) -> None:
    response = await upload(client, owner.headers, content, filename, declared)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert await count(db, MediaObject) == 0
    assert staging_files() == []


async def test_oversized_upload_is_cut_off_while_streaming(
    client: httpx.AsyncClient, owner: Person, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_media_settings(), "media_max_upload_bytes", 256 * 1024)
    boundary = "b0undary"
    sent_chunks = 0
    total_chunks = 64  # 64 x 64 KiB = 4 MiB offered, 256 KiB allowed

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent_chunks
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        yield b"%PDF-1.7\n"
        for _ in range(total_chunks):
            sent_chunks += 1
            yield b"0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    # No Content-Length (chunked): the limit must hold while reading, not from a header.
    response = await client.post(
        "/api/v1/media",
        content=body(),
        headers={**owner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "media.too_large"
    assert response.json()["limit"] == 256 * 1024
    assert sent_chunks < total_chunks  # the server stopped reading early
    assert await count(db, MediaObject) == 0
    assert staging_files() == []


@pytest.mark.parametrize(
    "ignored_part",
    [
        # A file in a field nobody reads.
        'name="other"; filename="x.bin"',
        # A text field past the number of text fields kept.
        'name="t99"',
    ],
)
async def test_bytes_in_an_ignored_part_are_cut_off_while_streaming(
    client: httpx.AsyncClient,
    owner: Person,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    ignored_part: str,
) -> None:
    """Chunked (no Content-Length), the bytes in a part the parser skips: the whole body is
    capped, not only the file's bytes."""
    monkeypatch.setattr(get_media_settings(), "media_max_upload_bytes", 256 * 1024)
    boundary = "b0undary"
    sent_chunks = 0
    total_chunks = 64  # 64 x 64 KiB = 4 MiB offered in the skipped part

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent_chunks
        for n in range(20):  # fill the text fields kept, so a further one is skipped
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n'
            ).encode()
        yield (f"--{boundary}\r\nContent-Disposition: form-data; {ignored_part}\r\n\r\n").encode()
        for _ in range(total_chunks):
            sent_chunks += 1
            yield b"0" * 65536
        yield (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        yield pdf_bytes()
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/api/v1/media",
        content=body(),
        headers={**owner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "media.too_large"
    assert sent_chunks < total_chunks  # the server stopped reading early
    assert await count(db, MediaObject) == 0
    assert staging_files() == []


async def test_active_pdf_name_split_across_chunks_is_still_found(
    client: httpx.AsyncClient, owner: Person, db: AsyncSession
) -> None:
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="split.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        yield b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction << /S /Lau"
        yield b"nch /F (cmd.exe) >> >> endobj\ntrailer\n%%EOF\n"
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/api/v1/media",
        content=body(),
        headers={**owner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "media.active_content"
    assert response.json()["markers"] == ["Launch"]
    assert await count(db, MediaObject) == 0


async def test_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, owner: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_media_settings(), "media_max_upload_bytes", 1024)
    response = await upload(client, owner.headers, pdf_bytes(64 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "media.too_large"


async def test_malformed_requests_get_clear_codes(client: httpx.AsyncClient, owner: Person) -> None:
    not_multipart = await client.post("/api/v1/media", json={"file": "x"}, headers=owner.headers)
    assert not_multipart.status_code == 415
    assert not_multipart.json()["code"] == "media.not_multipart"

    no_file = await client.post(
        "/api/v1/media",
        data={"purpose": "document"},
        files={"other": ("a.pdf", pdf_bytes(), "application/pdf")},
        headers=owner.headers,
    )
    assert no_file.status_code == 422
    assert no_file.json()["code"] == "media.file_missing"

    two = await client.post(
        "/api/v1/media",
        headers=owner.headers,
        files=[
            ("file", ("a.pdf", pdf_bytes(), "application/pdf")),
            ("file", ("b.pdf", pdf_bytes(), "application/pdf")),
        ],
    )
    assert two.status_code == 422
    assert two.json()["code"] == "media.too_many_files"
    assert staging_files() == []


async def test_upload_needs_sign_in(client: httpx.AsyncClient, owner: Person) -> None:
    response = await client.post(
        "/api/v1/media", files={"file": ("a.pdf", pdf_bytes(), "application/pdf")}
    )
    assert response.status_code == 401


async def test_nobody_else_can_read_my_file(
    client: httpx.AsyncClient, owner: Person, stranger: Person
) -> None:
    media_id = (await upload(client, owner.headers, pdf_bytes())).json()["id"]
    for path in (f"/api/v1/media/{media_id}", f"/api/v1/media/{media_id}/content"):
        response = await client.get(path, headers=stranger.headers)
        assert response.status_code == 404
        assert response.json()["code"] == "media.not_found"
    mine = await client.get(f"/api/v1/media/{media_id}", headers=owner.headers)
    assert mine.status_code == 200
