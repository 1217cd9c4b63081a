"""Vietnamese first, English second: language negotiation from Accept-Language."""

from __future__ import annotations

from typing import Literal

Language = Literal["vi", "en"]
SUPPORTED: tuple[Language, ...] = ("vi", "en")
DEFAULT: Language = "vi"


def negotiate(accept_language: str | None) -> Language:
    """Pick vi or en from an Accept-Language header, honouring q-values; vi by default."""
    if not accept_language:
        return DEFAULT
    best: tuple[float, Language] | None = None
    for part in accept_language.split(","):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower().split("-")[0]
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag in SUPPORTED and quality > 0 and (best is None or quality > best[0]):
            best = (quality, tag)
    return best[1] if best else DEFAULT
