"""Photo and video formats (incident reports' evidence), added to the sniffing registry.

JPEG and PNG are in the base registry. Here: WebP, HEIC, MP4, MOV, 3GP. ISO-BMFF files (HEIC and
the videos) and WebP cannot be judged complete from their last bytes; `inspect.py` walks their
structure on the whole file instead.
"""

from __future__ import annotations

from app.media import sniff
from app.media.sniff import Format, register

HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"mmp4",
    b"dash",
    b"MSNV",
}
# Old QuickTime files may start with another top-level atom than `ftyp`.
MOV_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip"}


def _brand(head: bytes) -> bytes | None:
    return head[8:12] if len(head) >= 12 and head[4:8] == b"ftyp" else None


def _always(_tail: bytes) -> bool:
    return True  # judged on the whole file by inspect.py


WEBP = register(
    Format(
        "image/webp",
        (".webp",),
        "WebP",
        matches=lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
        complete=_always,
    )
)
HEIC = register(
    Format(
        "image/heic",
        (".heic", ".heif"),
        "HEIC",
        matches=lambda head: _brand(head) in HEIC_BRANDS,
        complete=_always,
    )
)
MP4 = register(
    Format(
        "video/mp4",
        (".mp4", ".m4v"),
        "MP4",
        matches=lambda head: _brand(head) in MP4_BRANDS,
        complete=_always,
    )
)
MOV = register(
    Format(
        "video/quicktime",
        (".mov", ".qt"),
        "MOV",
        matches=lambda head: (
            _brand(head) == b"qt  " or (_brand(head) is None and head[4:8] in MOV_FIRST_ATOMS)
        ),
        complete=_always,
    )
)
THREE_GP = register(
    Format(
        "video/3gpp",
        (".3gp", ".3g2"),
        "3GP",
        matches=lambda head: (_brand(head) or b"")[:3] in (b"3gp", b"3g2"),
        complete=_always,
    )
)

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/3gpp")
BMFF_TYPES = ("image/heic", *VIDEO_TYPES)


def kind_of(content_type: str) -> str | None:
    if content_type in PHOTO_TYPES:
        return "photo"
    if content_type in VIDEO_TYPES:
        return "video"
    return None


def label(content_type: str) -> str:
    fmt = sniff.FORMATS.get(content_type)
    return fmt.label if fmt else content_type
