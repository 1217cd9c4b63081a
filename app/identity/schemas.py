"""Request and response bodies of the identity API (never the tables themselves)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.identity.roles import Role

PHONE_EXAMPLE = "0912345678"


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class OtpRequest(StrictBody):
    phone: str = Field(max_length=32, examples=[PHONE_EXAMPLE])
    purpose: Literal["register", "reset_password"] = Field(examples=["register"])


class OtpSent(BaseModel):
    sent_to: str = Field(examples=["+84•••••5678"])
    expires_in: int = Field(examples=[300], description="Seconds until the code expires")
    resend_after: int = Field(examples=[60], description="Seconds before another code may be sent")


class RegisterRequest(StrictBody):
    phone: str = Field(max_length=32, examples=[PHONE_EXAMPLE])
    otp: str = Field(min_length=1, max_length=12, examples=["123456"])
    password: str = Field(min_length=1, max_length=256, examples=["mat-khau-rat-dai-2026"])
    full_name: str = Field(min_length=1, max_length=200, examples=["Nguyễn Văn An"])
    device_name: str | None = Field(default=None, max_length=200, examples=["Pixel 8"])
    locale: Literal["vi", "en"] = "vi"


class LoginRequest(StrictBody):
    phone: str = Field(max_length=32, examples=[PHONE_EXAMPLE])
    password: str = Field(min_length=1, max_length=256, examples=["mat-khau-rat-dai-2026"])
    device_name: str | None = Field(default=None, max_length=200, examples=["iPhone 15"])


class RefreshRequest(StrictBody):
    refresh_token: str = Field(min_length=1, max_length=200)


class PasswordResetRequest(StrictBody):
    phone: str = Field(max_length=32, examples=[PHONE_EXAMPLE])
    otp: str = Field(min_length=1, max_length=12, examples=["123456"])
    new_password: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int = Field(examples=[900])
    refresh_token: str
    session_id: uuid.UUID


class AssistedRegistration(BaseModel):
    """A community helper registered someone: the account exists, and no session was opened for
    the helper to hold. The citizen signs in on their own device."""

    registered: Literal[True] = True
    signed_in: Literal[False] = False


class IdentityOut(BaseModel):
    cccd: str = Field(
        description="Full to its owner, masked to everyone else", examples=["019203001234"]
    )
    full_name: str
    date_of_birth: date
    gender: Literal["male", "female"]
    declared_at: datetime


class VerificationOut(BaseModel):
    id: uuid.UUID
    level: int
    ward_code: str
    document_kind: str
    verified_at: datetime
    verified_by_id: uuid.UUID


class ProfileOut(BaseModel):
    id: uuid.UUID
    phone: str = Field(examples=["+84912345678"])
    full_name: str | None
    role: Role
    ward_code: str | None
    locale: str
    email: str | None
    identity_level: int = Field(
        description="0 phone verified, 1 identity declared, 2 verified in "
        "person (Decree 69/2024/ND-CP)"
    )
    identity: IdentityOut | None
    verification: VerificationOut | None
    created_at: datetime


class ProfilePatch(StrictBody):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    ward_code: str | None = Field(default=None, max_length=32, examples=["TNG-PDP"])
    locale: Literal["vi", "en"] | None = None
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class IdentityIn(StrictBody):
    cccd: str = Field(max_length=20, examples=["019203001234"])
    full_name: str = Field(min_length=1, max_length=200, examples=["Nguyễn Thị Bình"])
    date_of_birth: date = Field(examples=["2003-05-14"])
    gender: Literal["male", "female"] = Field(examples=["female"])


class SessionOut(BaseModel):
    id: uuid.UUID
    device_name: str | None
    user_agent: str | None
    ip: str | None
    client_id: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool


class DeleteAccountRequest(StrictBody):
    password: str = Field(min_length=1, max_length=256)


class RetainedOut(BaseModel):
    data: str
    reason_vi: str
    reason_en: str
    retention_days: int | None


class DeletionReport(BaseModel):
    deleted: bool
    erased: list[str]
    retained: list[RetainedOut]


class CitizenOut(BaseModel):
    """What ward staff see: CCCD masked."""

    id: uuid.UUID
    phone: str
    full_name: str | None
    ward_code: str | None
    identity_level: int
    identity: IdentityOut | None
    verification: VerificationOut | None


class DocumentDetails(StrictBody):
    full_name: str = Field(min_length=1, max_length=200, examples=["Nguyễn Văn An"])
    date_of_birth: date = Field(examples=["1990-05-17"])
    gender: Literal["male", "female"]


class VerifyIdentityIn(StrictBody):
    document_kind: Literal["cccd_chip", "cccd", "passport"] = Field(examples=["cccd_chip"])
    cccd: str = Field(max_length=20, description="Number read from the document shown in person")
    note: str | None = Field(default=None, max_length=500)
    document: DocumentDetails | None = Field(
        default=None,
        description="The name, birth date and gender printed on the document. Needed when the "
        "citizen could not declare this number because another, unverified account declared it "
        "first: the verification then gives the number to the document's holder.",
    )


class RevokeVerificationIn(StrictBody):
    reason: str = Field(min_length=3, max_length=500)


class UserCreated(BaseModel):
    id: uuid.UUID
    phone: str
    full_name: str | None
    role: Role
    ward_code: str | None


class DutyIn(BaseModel):
    hours: float = Field(
        default=12, gt=0, le=24, description="Length of the shift from now, in hours (default 12)."
    )


class DutyShift(BaseModel):
    user_id: uuid.UUID
    full_name: str | None
    started_at: datetime
    until: datetime


class DutyOut(BaseModel):
    on_duty: bool = Field(description="Whether I am on duty now.")
    until: datetime | None = Field(description="When my shift ends (null: off duty).")
    ward_code: str | None
    ward_on_duty: list[DutyShift] = Field(
        description="The shifts running now in my ward. While it is empty, the ward's urgent "
        "notices (camera alerts) go to all its staff."
    )
