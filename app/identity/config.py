"""Identity settings: SMS codes (OTP), sign-in back-off, CCCD declarations, passwords, the SMS
gateway. The argon2 cost of password hashes is core's (`PASSWORD_HASH_*`: app.core.security
hashes for every domain)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import VAR_DIR, get_settings


class IdentitySettings(BaseSettings):
    """Thai Nguyen ID: accounts, SMS codes, sign-in, CCCD (`app/identity`)."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # Where SMS codes go: `file` (a development sink, one JSON object a line) or `http` (the
    # gateway). Refused in production: `file`.
    sms_backend: Literal["file", "http"] = "file"
    # The file sink.
    sms_file_path: Path = VAR_DIR / "sms.jsonl"
    # The HTTP gateway, called `POST {to, body, sender}` with the key as a Bearer token.
    sms_gateway_url: str = ""
    # The gateway's key.
    sms_gateway_api_key: str = ""
    # The sender name the gateway shows.
    sms_sender_name: str = "TNID"

    # An SMS code's lifetime.
    otp_ttl_seconds: int = 300
    # Wrong guesses a code allows (counted atomically before each check).
    otp_max_attempts: int = 5
    # The wait before another code is sent to the same number.
    otp_resend_interval_seconds: int = 60
    # Codes sent to a phone number in an hour.
    otp_per_phone_per_hour: int = 5
    # Codes requested from a client IP in an hour.
    otp_per_ip_per_hour: int = 30
    # Code checks for a phone number in an hour, across every code sent (5 attempts a code would
    # otherwise be 5 per code sent).
    otp_checks_per_phone_per_hour: int = 10
    # Code checks from a client IP in an hour, across phone numbers.
    otp_checks_per_ip_per_hour: int = 60
    # CCCD declarations per account a day: enough to correct a typo, too few to enumerate who is
    # registered.
    cccd_declarations_per_account_per_day: int = 5
    # CCCD declarations from a client IP a day.
    cccd_declarations_per_ip_per_day: int = 20

    # Shortest password; a list of common passwords is refused too.
    password_min_length: int = 8
    # Sign-in back-off: failed sign-ins (counted from any address) before an account is locked;
    # a password reset lifts a lock.
    login_free_failures: int = 5
    # The first lock's length, doubling with each further failure.
    login_lock_base_seconds: int = 30
    # The longest lock.
    login_lock_max_seconds: int = 900
    # Sign-in attempts per client IP a minute.
    login_per_ip_per_minute: int = 60

    # The privacy policy version recorded with each consent.
    privacy_policy_version: str = "2026-01"

    @model_validator(mode="after")
    def _check(self) -> IdentitySettings:
        if self.sms_backend == "http" and not self.sms_gateway_url:
            raise ValueError("SMS_BACKEND=http needs SMS_GATEWAY_URL")
        if self.sms_backend == "file" and get_settings().environment == "production":
            raise ValueError("SMS_BACKEND=file is for development only")
        return self


@lru_cache
def get_identity_settings() -> IdentitySettings:
    return IdentitySettings()
