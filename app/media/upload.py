"""Stream a multipart/form-data request straight to a staging file.

Starlette's `request.form()` would spool the whole body before the handler runs, so the size
limit could only be checked after the fact. Here python-multipart's push parser is fed the
request stream chunk by chunk: file bytes go to disk as they arrive, hashed on the way, and the
upload is cut off the moment it passes the limit. Memory stays at one chunk whatever the size.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.errors import AppError
from app.media import errors
from app.media.sniff import HEAD_BYTES, TAIL_BYTES
from app.media.storage import new_staging_path

MAX_TEXT_FIELD_BYTES = 4096
MAX_TEXT_FIELDS = 16
# Headers and boundaries around the file: allowance on top of the file limit for Content-Length.
MULTIPART_OVERHEAD = 16 * 1024
# PDF names that run or carry code when staff open the file. Found in uncompressed objects only
# (a name inside a compressed object stream escapes this scan): a first line, not a sandbox.
ACTIVE_PDF_NAMES = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFile|RichMedia|XFA)(?![A-Za-z0-9])")
SCAN_OVERLAP = 16


@dataclass
class StagedFile:
    path: Path
    filename: str | None
    declared_type: str | None
    size: int = 0
    head: bytes = b""
    tail: bytes = b""
    sha256: str = ""
    # Markers seen anywhere in the bytes (e.g. active PDF names), judged by the format.
    markers: set[str] = field(default_factory=set)


@dataclass
class _State:
    file_field: str
    headers: dict[str, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    current: str | None = None  # "file", "text:<name>" or "skip"
    fields: dict[str, bytearray] = field(default_factory=dict)
    pending: list[bytes] = field(default_factory=list)
    file_seen: bool = False
    filename: str | None = None
    declared_type: str | None = None
    error: AppError | None = None


def _callbacks(state: _State) -> dict[str, Any]:
    def on_part_begin() -> None:
        state.headers, state.current = {}, None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        state.headers[state.header_name.decode("latin-1").lower()] = state.header_value
        state.header_name, state.header_value = b"", b""

    def on_headers_finished() -> None:
        _, params = parse_options_header(state.headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if name == state.file_field and filename is not None:
            if state.file_seen:
                state.error = state.error or AppError(errors.TOO_MANY_FILES)
                state.current = "skip"
                return
            state.file_seen = True
            state.filename = filename.decode("utf-8", "replace")[:255] or None
            declared = state.headers.get("content-type")
            state.declared_type = declared.decode("latin-1")[:100] if declared else None
            state.current = "file"
        elif filename is None and len(state.fields) < MAX_TEXT_FIELDS:
            state.fields.setdefault(name, bytearray())
            state.current = f"text:{name}"
        else:
            state.current = "skip"

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.current == "file":
            state.pending.append(bytes(data[start:end]))
        elif state.current and state.current.startswith("text:"):
            buf = state.fields[state.current[5:]]
            if len(buf) + (end - start) > MAX_TEXT_FIELD_BYTES:
                state.error = state.error or AppError(errors.MALFORMED_UPLOAD)
                return
            buf.extend(data[start:end])

    return {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    }


def _boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise AppError(errors.NOT_MULTIPART)
    return boundary


async def receive_file(
    request: Request, *, max_bytes: int, file_field: str = "file"
) -> tuple[StagedFile, dict[str, str]]:
    """Stage the one file of a multipart request; return it with the text fields.

    On any failure the staging file is removed before the error propagates.
    """
    boundary = _boundary(request)
    # The whole body, whatever its parts (a skipped part, a chunked body without a length): the
    # core body limit leaves upload routes to this one.
    body_limit = max_bytes + MULTIPART_OVERHEAD
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > body_limit:
        raise AppError(errors.TOO_LARGE, params={"limit": max_bytes}, extra={"limit": max_bytes})
    body_read = 0
    state = _State(file_field=file_field)
    parser = MultipartParser(boundary, _callbacks(state))  # type: ignore[arg-type]
    staged = StagedFile(path=new_staging_path(), filename=None, declared_type=None)
    digest = hashlib.sha256()
    carry = b""
    try:
        async with await anyio.open_file(staged.path, "wb") as out:
            async for chunk in request.stream():
                body_read += len(chunk)
                if body_read > body_limit:
                    raise AppError(
                        errors.TOO_LARGE, params={"limit": max_bytes}, extra={"limit": max_bytes}
                    )
                try:
                    parser.write(chunk)
                except MultipartParseError:
                    raise AppError(errors.MALFORMED_UPLOAD) from None
                if state.error:
                    raise state.error
                for piece in state.pending:
                    staged.size += len(piece)
                    if staged.size > max_bytes:
                        raise AppError(
                            errors.TOO_LARGE,
                            params={"limit": max_bytes},
                            extra={"limit": max_bytes},
                        )
                    if len(staged.head) < HEAD_BYTES:
                        staged.head += piece[: HEAD_BYTES - len(staged.head)]
                    staged.tail = (staged.tail + piece)[-TAIL_BYTES:]
                    window = carry + piece
                    staged.markers.update(m.decode() for m in ACTIVE_PDF_NAMES.findall(window))
                    carry = window[-SCAN_OVERLAP:]
                    digest.update(piece)
                    await out.write(piece)
                state.pending.clear()
        try:
            parser.finalize()
        except MultipartParseError:
            raise AppError(errors.MALFORMED_UPLOAD) from None
        if not state.file_seen:
            raise AppError(errors.FILE_MISSING, params={"field": file_field})
        if staged.size == 0:
            raise AppError(errors.EMPTY_FILE)
    except BaseException:
        await anyio.Path(staged.path).unlink(missing_ok=True)
        raise
    staged.filename, staged.declared_type = state.filename, state.declared_type
    staged.sha256 = digest.hexdigest()
    fields = {k: v.decode("utf-8", "replace") for k, v in state.fields.items()}
    return staged, fields
