"""Password policy: long enough, not on the list of common passwords, not the phone number."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from app.identity.config import get_identity_settings

PasswordProblem = Literal["too_short", "too_long", "common", "contains_phone"]
MAX_LENGTH = 128


@lru_cache
def common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def check_password(password: str, *, phone: str | None = None) -> PasswordProblem | None:
    if len(password) < get_identity_settings().password_min_length:
        return "too_short"
    if len(password) > MAX_LENGTH:
        return "too_long"
    if password.lower() in common_passwords():
        return "common"
    if phone:
        national = "0" + phone.removeprefix("+84")
        if phone.lstrip("+") in password or national in password:
            return "contains_phone"
    return None
