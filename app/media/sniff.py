"""Judge a file by its bytes, never by its name or declared type.

Each format checks its leading signature and its trailing structure (a truncated upload or a file
with bytes appended after its end marker is refused as corrupt). The registry is open:
`formats.py` registers WebP/HEIC/MP4/... with `register()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

HEAD_BYTES = 64
TAIL_BYTES = 1024


@dataclass(frozen=True)
class Format:
    content_type: str
    extensions: tuple[str, ...]
    label: str
    matches: Callable[[bytes], bool]
    # Given the last TAIL_BYTES, is the file complete and without trailing data?
    complete: Callable[[bytes], bool]


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    FORMATS[fmt.content_type] = fmt
    return fmt


def _pdf_complete(tail: bytes) -> bool:
    # Incremental updates append after %%EOF, so only the last marker counts; allow whitespace.
    return tail.rstrip(b"\r\n\t \x00").endswith(b"%%EOF")


def _jpeg_complete(tail: bytes) -> bool:
    return tail.rstrip(b"\x00").endswith(b"\xff\xd9")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"

PDF = register(
    Format(
        "application/pdf",
        (".pdf",),
        "PDF",
        matches=lambda head: head.startswith(b"%PDF-1.") or head.startswith(b"%PDF-2."),
        complete=_pdf_complete,
    )
)
JPEG = register(
    Format(
        "image/jpeg",
        (".jpg", ".jpeg", ".jpe", ".jfif"),
        "JPEG",
        matches=lambda head: head.startswith(b"\xff\xd8\xff"),
        complete=_jpeg_complete,
    )
)
PNG = register(
    Format(
        "image/png",
        (".png",),
        "PNG",
        # The signature and then the IHDR chunk, always first.
        matches=lambda head: head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR",
        complete=lambda tail: tail.endswith(PNG_IEND),
    )
)


def detect(head: bytes) -> Format | None:
    for fmt in FORMATS.values():
        if fmt.matches(head):
            return fmt
    return None


def extension_of(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    return "." + filename.rsplit(".", 1)[1].lower()


def known_extension(ext: str) -> bool:
    return any(ext in fmt.extensions for fmt in FORMATS.values())


def declared_mismatch(fmt: Format, declared_type: str | None, filename: str | None) -> bool:
    """True when the client named another *known* format than the bytes are.

    Generic declarations (application/octet-stream, no extension) are not a mismatch: phones often
    send those.
    """
    if declared_type:
        base = declared_type.split(";")[0].strip().lower()
        aliases = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
        base = aliases.get(base, base)
        if base in FORMATS and base != fmt.content_type:
            return True
    ext = extension_of(filename)
    return bool(ext and known_extension(ext) and ext not in fmt.extensions)
