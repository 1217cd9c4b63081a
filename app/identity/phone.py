"""Vietnamese mobile numbers, normalised to E.164 with `phonenumbers`."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_vn_mobile(raw: str) -> str | None:
    """'0912 345 678', '+84912345678', '84912345678' -> '+84912345678'; None if not a VN mobile."""
    text = raw.strip()
    if text.startswith("84") and not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "VN")
    except NumberParseException:
        return None
    if (
        number.country_code != 84
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in MOBILE_TYPES
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """+84912345678 -> +84•••••5678"""
    return e164[:3] + "•" * max(0, len(e164) - 7) + e164[-4:]
