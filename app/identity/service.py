"""The rules of Thai Nguyen ID: OTP, registration, sign-in, profile, identity levels, staff scope,
export and erasure. Services flush; the request's session commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from app.admin_units import service as admin_units
from app.core import audit, clock, jobs, metrics, ratelimit
from app.core.audit import AuditContext
from app.core.config import get_settings
from app.core.db import Direct, unit_of_work
from app.core.errors import AppError
from app.core.personal_data import Retained
from app.core.security import (
    blind_index,
    constant_time_equals,
    decrypt_pii,
    encrypt_pii,
    hash_password,
    keyed_hash,
    password_needs_rehash,
    random_digits,
    verify_password,
)
from app.core.tables import rows_matched, table_of
from app.identity import errors
from app.identity.cccd import check_cccd, mask_cccd
from app.identity.config import get_identity_settings
from app.identity.models import (
    CitizenIdentity,
    ConsentRecord,
    IdentityVerification,
    OtpChallenge,
    User,
    signed_in_account,
)
from app.identity.passwords import check_password
from app.identity.phone import mask_phone, normalize_vn_mobile
from app.identity.roles import STAFF_ROLES, WARD_BOUND_ROLES, Role
from app.tokens import errors as token_errors
from app.tokens import service as tokens

Account = User
"""The account type other domains name in their signatures (a citizen, a staff member). Its table
stays identity's: they read accounts through this module's functions (e.g. `get_active_user`)."""

OTP_LENGTH = 6
SEND_SMS = "identity.send_sms"

CCCD_REASONS: dict[str, tuple[str, str]] = {
    "format": ("phải gồm đúng 12 chữ số", "it must be exactly 12 digits"),
    "province": (
        "3 số đầu không phải mã tỉnh/thành hợp lệ",
        "the first 3 digits are not a valid province code",
    ),
    "gender_century": (
        "chữ số thứ 4 (giới tính/thế kỷ) không hợp lệ",
        "the 4th digit (gender and century) is not valid",
    ),
    "gender_mismatch": (
        "chữ số giới tính không khớp với giới tính khai báo",
        "the gender digit does not match the declared gender",
    ),
    "century_mismatch": (
        "chữ số thế kỷ không khớp với năm sinh",
        "the century digit does not match the year of birth",
    ),
    "year_mismatch": (
        "chữ số 5–6 không khớp với năm sinh",
        "digits 5–6 do not match the year of birth",
    ),
    "future_birth": ("ngày sinh ở tương lai", "the date of birth is in the future"),
}
PASSWORD_REASONS: dict[str, tuple[str, str]] = {
    "too_short": ("cần ít nhất {min} ký tự", "it needs at least {min} characters"),
    "too_long": ("quá dài", "it is too long"),
    "common": ("mật khẩu quá phổ biến, dễ bị đoán", "it is a very common, easily guessed password"),
    "contains_phone": ("không được chứa số điện thoại", "it must not contain the phone number"),
}


# ---------------------------------------------------------------- phone and password checks


def require_phone(raw: str) -> str:
    phone = normalize_vn_mobile(raw)
    if phone is None:
        raise AppError(errors.INVALID_PHONE)
    return phone


def require_strong_password(password: str, phone: str | None) -> None:
    problem = check_password(password, phone=phone)
    if problem:
        minimum = get_identity_settings().password_min_length
        vi, en = PASSWORD_REASONS[problem]
        raise AppError(
            errors.WEAK_PASSWORD,
            params={"reason_vi": vi.format(min=minimum), "reason_en": en.format(min=minimum)},
            extra={"reason": problem},
        )


# ---------------------------------------------------------------- OTP


async def _latest_otp(session: AsyncSession, phone: str, purpose: str) -> OtpChallenge | None:
    return (
        await session.execute(
            sa.select(OtpChallenge)
            .where(col(OtpChallenge.phone) == phone, col(OtpChallenge.purpose) == purpose)
            .order_by(col(OtpChallenge.created_at).desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def get_active_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The account if it exists and may sign in (for other domains, e.g. the OIDC provider)."""
    user = await session.get(User, user_id)
    return user if user is not None and user.status == "active" else None


async def find_user_by_phone(session: AsyncSession, phone: str) -> User | None:
    return (
        await session.execute(sa.select(User).where(col(User.phone) == phone))
    ).scalar_one_or_none()


async def send_otp(
    session: AsyncSession, raw_phone: str, purpose: str, ip: str | None
) -> dict[str, Any]:
    """Open a code challenge and queue its SMS. Everything here is the same whether or not the
    phone has an account (the answer, the resend wait, the limits, the statements run): the
    worker decides at delivery whether the SMS goes out (`tasks.send_sms`), so neither the
    answer nor its timing tells who is registered."""
    settings = get_identity_settings()
    phone = require_phone(raw_phone)
    await ratelimit.hit(
        session, f"otp:ip:{ip}", limit=settings.otp_per_ip_per_hour, window_seconds=3600
    )
    latest = await _latest_otp(session, phone, purpose)
    now = clock.now()
    if latest is not None:
        wait = settings.otp_resend_interval_seconds - (now - latest.created_at).total_seconds()
        if wait > 0:
            retry_after = int(wait) + 1
            raise AppError(
                errors.OTP_RESEND_TOO_SOON,
                params={"retry_after": retry_after},
                extra={"retry_after": retry_after},
                headers={"Retry-After": str(retry_after)},
                commit=True,
            )
    await ratelimit.hit(
        session, f"otp:phone:{phone}", limit=settings.otp_per_phone_per_hour, window_seconds=3600
    )
    code = random_digits(OTP_LENGTH)
    session.add(
        OtpChallenge(
            phone=phone,
            purpose=purpose,
            code_hash=keyed_hash(f"{phone}:{purpose}:{code}", purpose="otp"),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.otp_ttl_seconds),
        )
    )
    body = (
        f"Thai Nguyen ID: ma xac thuc cua ban la {code}. Hieu luc "
        f"{settings.otp_ttl_seconds // 60} phut. Khong chia se ma nay voi bat ky ai."
    )
    # The outbox keeps jobs for days: the text (with its code) only sealed, never in clear.
    await jobs.enqueue(
        session,
        SEND_SMS,
        {
            "to": phone,
            "purpose": purpose,
            "body_sealed": encrypt_pii(body, context="sms"),
        },
    )
    metrics.OTP_SENT.labels(purpose).inc()
    return {
        "sent_to": mask_phone(phone),
        "expires_in": settings.otp_ttl_seconds,
        "resend_after": settings.otp_resend_interval_seconds,
    }


async def otp_deliverable(session: AsyncSession, phone: str, purpose: str) -> bool:
    """A registration code goes only to a number without an account, a reset code only to one
    with an account (decided when the SMS is sent, never in the answer to the request)."""
    registered = await find_user_by_phone(session, phone) is not None
    return registered == (purpose == "reset_password")


async def consume_otp(
    session: AsyncSession, phone: str, purpose: str, code: str, ip: str | None
) -> None:
    """Accept the newest unexpired code once.

    Each check first takes one of the challenge's attempts in a single conditional UPDATE, so
    concurrent guesses can never be compared more times than `otp_max_attempts` (nor the real
    code be accepted after the limit). Checks are also limited per phone and per IP across
    challenges. Failures commit (`commit=True`): they must count."""
    settings = get_identity_settings()
    await ratelimit.hit(
        session,
        f"otp-check:ip:{ip}",
        limit=settings.otp_checks_per_ip_per_hour,
        window_seconds=3600,
    )
    await ratelimit.hit(
        session,
        f"otp-check:phone:{phone}",
        limit=settings.otp_checks_per_phone_per_hour,
        window_seconds=3600,
    )
    challenge = await _latest_otp(session, phone, purpose)
    now = clock.now()
    if challenge is None or challenge.consumed_at is not None or challenge.expires_at <= now:
        raise AppError(errors.OTP_EXPIRED, commit=True)
    table = table_of(OtpChallenge)
    attempts = (
        await session.execute(
            sa.update(table)
            .where(
                table.c.id == challenge.id,
                table.c.consumed_at.is_(None),
                table.c.attempts < settings.otp_max_attempts,
            )
            .values(attempts=table.c.attempts + 1)
            .returning(table.c.attempts)
        )
    ).scalar_one_or_none()
    if attempts is None:
        raise AppError(errors.OTP_TOO_MANY_ATTEMPTS, commit=True)
    expected = keyed_hash(f"{phone}:{purpose}:{code.strip()}", purpose="otp")
    if not constant_time_equals(expected, challenge.code_hash):
        remaining = settings.otp_max_attempts - attempts
        if remaining <= 0:
            raise AppError(errors.OTP_TOO_MANY_ATTEMPTS, commit=True)
        raise AppError(
            errors.OTP_INVALID,
            params={"remaining": remaining},
            extra={"remaining_attempts": remaining},
            commit=True,
        )
    # Atomic: two concurrent uses of one code, only one succeeds.
    used = await session.execute(
        sa.update(table)
        .where(table.c.id == challenge.id, table.c.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    if rows_matched(used) != 1:
        raise AppError(errors.OTP_EXPIRED)


# ---------------------------------------------------------------- registration and sign-in


@dataclass
class SignIn:
    user_id: uuid.UUID
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


async def _open_session(
    session: AsyncSession,
    user: User,
    *,
    device_name: str | None,
    user_agent: str | None,
    ip: str | None,
) -> SignIn:
    auth_session, refresh = await tokens.start_session(
        session,
        user_id=user.id,
        device_name=device_name,
        user_agent=user_agent,
        ip=ip,
        acr=f"urn:thainguyen:id:loa:{user.identity_level}",
    )
    access, ttl = tokens.issue_access_token(
        subject=str(user.id),
        session_id=auth_session.id,
        scope="app",
        extra_claims={"role": user.role},
    )
    return SignIn(user.id, access, refresh, ttl, auth_session.id)


async def register(
    session: AsyncSession,
    *,
    phone_raw: str,
    otp: str,
    password: str,
    full_name: str,
    locale: str,
    device_name: str | None,
    user_agent: str | None,
    ctx: AuditContext,
    helper: User | None = None,
) -> SignIn | None:
    """Create the account once the SMS code is right. The code is checked before anything else
    about the number, so a wrong or missing code answers the same for a registered number.

    A community helper registering someone gets no session for them (None): the citizen signs
    in on their own device with the password they chose."""
    phone = require_phone(phone_raw)
    require_strong_password(password, phone)
    await consume_otp(session, phone, "register", otp, ctx.ip)
    user = User(
        phone=phone,
        password_hash=await hash_password(password),
        full_name=full_name,
        locale=locale,
        registered_by_id=helper.id if helper else None,
        ward_code=helper.ward_code if helper else None,
    )
    session.add(user)
    try:
        await session.flush()
    except sa.exc.IntegrityError:  # registered meanwhile (the code proves the number is theirs)
        raise AppError(errors.PHONE_TAKEN) from None
    session.add(
        ConsentRecord(
            user_id=user.id,
            purpose="thainguyen_id_account",
            policy_version=get_identity_settings().privacy_policy_version,
            ip=ctx.ip,
        )
    )
    await audit.record(
        session,
        ctx,
        "identity.registered",
        subject_id=user.id,
        details={"via_helper": bool(helper)},
    )
    if helper is not None:
        return None
    return await _open_session(
        session, user, device_name=device_name, user_agent=user_agent, ip=ctx.ip
    )


def _lock_seconds(failures: int) -> int:
    """Free failures, then 30 s, 60 s, 120 s... capped: a lock never lasts beyond the cap."""
    settings = get_identity_settings()
    over = failures - settings.login_free_failures
    if over < 0:
        return 0
    delay = settings.login_lock_base_seconds * 2 ** min(over, 20)
    return min(settings.login_lock_max_seconds, delay)


async def login(
    session: AsyncSession,
    *,
    phone_raw: str,
    password: str,
    device_name: str | None,
    user_agent: str | None,
    ctx: AuditContext,
) -> SignIn:
    user = await authenticate(session, phone_raw=phone_raw, password=password, ctx=ctx)
    signed_in = await _open_session(
        session, user, device_name=device_name, user_agent=user_agent, ip=ctx.ip
    )
    await audit.record(
        session,
        AuditContext(actor_id=user.id, actor_role=user.role, ip=ctx.ip, request_id=ctx.request_id),
        "identity.login",
        subject_id=user.id,
        details={"session_id": str(signed_in.session_id)},
    )
    return signed_in


def _not_locked(now: datetime) -> sa.ColumnElement[bool]:
    users = table_of(User)
    return sa.or_(users.c.locked_until.is_(None), users.c.locked_until <= now)


def _locked_until_after(failures: sa.ColumnElement[int], now: datetime) -> sa.ColumnElement[Any]:
    """`_lock_seconds` as SQL over the new count of failures: no lock below the free failures,
    then one step per failure up to the cap."""
    settings = get_identity_settings()
    users = table_of(User)
    steps = []
    count = settings.login_free_failures
    while count <= settings.login_free_failures + 21:
        lock = _lock_seconds(count)
        steps.append(
            (
                failures == count,
                sa.literal(now + timedelta(seconds=lock), users.c.locked_until.type),
            )
        )
        if lock >= settings.login_lock_max_seconds:
            break
        count += 1
    return sa.case(
        (failures < settings.login_free_failures, users.c.locked_until),
        *steps,
        else_=sa.literal(
            now + timedelta(seconds=settings.login_lock_max_seconds), users.c.locked_until.type
        ),
    )


async def _admit_attempt(session: AsyncSession, user: User, *, ok: bool) -> int | None:
    """Settle one checked password against the account's lock, in one conditional UPDATE: a
    success resets the count, a failure adds one and locks when due. None when the account is
    locked (by concurrent failures too): the attempt then counts for nothing and says nothing,
    whatever the password, so a burst of guesses gets no more answers than a slow one."""
    users = table_of(User)
    now = clock.now()
    if ok:
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    else:
        failures = users.c.failed_logins + 1
        values = {"failed_logins": failures, "locked_until": _locked_until_after(failures, now)}
    row = (
        await session.execute(
            sa.update(users)
            .where(users.c.id == user.id, _not_locked(now))
            .values(**values)
            .returning(users.c.failed_logins, users.c.locked_until)
        )
    ).first()
    if row is None:
        return None
    # Keep the loaded account in step without another read.
    set_committed_value(user, "failed_logins", row.failed_logins)
    set_committed_value(user, "locked_until", row.locked_until)
    return int(row.failed_logins)


async def _refuse_locked(session: AsyncSession, user: User) -> None:
    await session.refresh(user, ["locked_until"])
    locked_until = user.locked_until or clock.now()
    retry_after = max(1, int((locked_until - clock.now()).total_seconds()) + 1)
    metrics.LOGINS.labels("locked").inc()
    raise AppError(
        errors.ACCOUNT_LOCKED,
        params={"retry_after": retry_after},
        extra={"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
        commit=True,
    )


async def authenticate(
    session: AsyncSession, *, phone_raw: str, password: str, ctx: AuditContext
) -> User:
    """Check a phone and password with the brute-force protection of every sign-in (per-IP rate
    limit, back-off and temporary lock). Used by the app login and the OpenID Connect login page;
    opens no session. Failures raise with `commit=True` so they are counted.

    The lock is decided by `_admit_attempt` after the (slow) password check, atomically, so that
    concurrent guesses from any number of addresses are counted one by one and none of them is
    answered once the account is locked. Locks are capped (`login_lock_max_seconds`) and a
    password reset lifts them: nobody is locked out for good."""
    settings = get_identity_settings()
    await ratelimit.hit(
        session, f"login:ip:{ctx.ip}", limit=settings.login_per_ip_per_minute, window_seconds=60
    )
    phone = normalize_vn_mobile(phone_raw)
    user = await find_user_by_phone(session, phone) if phone else None
    if user is not None and user.locked_until and user.locked_until > clock.now():
        await _refuse_locked(session, user)  # spare the password check while plainly locked
    ok = await verify_password(user.password_hash if user else None, password)
    if user is None:
        metrics.LOGINS.labels("failed").inc()
        raise AppError(errors.INVALID_CREDENTIALS, commit=True)
    failures = await _admit_attempt(session, user, ok=ok)
    if failures is None:
        await _refuse_locked(session, user)
    if not ok:
        await audit.record(
            session,
            ctx,
            "identity.login_failed",
            subject_id=user.id,
            details={"failures": failures},
        )
        metrics.LOGINS.labels("failed").inc()
        raise AppError(errors.INVALID_CREDENTIALS, commit=True)
    if user.status != "active":
        raise AppError(errors.ACCOUNT_DISABLED)
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)  # the argon2 cost was raised
    metrics.LOGINS.labels("ok").inc()
    return user


async def refresh(refresh_token: str, ip: str | None) -> SignIn:
    """Rotate an app refresh token (the token service's one rotation), in its own unit of work."""
    async with unit_of_work() as session:
        return await _refresh_in(session, refresh_token, ip)


async def _refresh_in(session: AsyncSession, refresh_token: str, ip: str | None) -> SignIn:
    try:
        auth_session, successor = await tokens.rotate_refresh_token(session, refresh_token, ip=ip)
    except AppError as exc:
        if exc.error is token_errors.REFRESH_REUSED:
            # The family was revoked as stolen: its devices must stop receiving pushes too.
            stolen = await tokens.find_session_by_refresh_token(session, refresh_token)
            if stolen is not None:
                await _session_ended(session, stolen.id)
        raise
    user = await session.get(User, auth_session.user_id)
    if user is None or user.status != "active":
        await tokens.revoke_session(session, auth_session.id, reason="account_inactive")
        raise AppError(errors.ACCOUNT_DISABLED, commit=True)
    access, ttl = tokens.issue_access_token(
        subject=str(user.id),
        session_id=auth_session.id,
        scope="app",
        extra_claims={"role": user.role},
    )
    return SignIn(user.id, access, successor, ttl, auth_session.id)


# ---------------------------------------------------------------- hooks for higher layers
# Domains above identity react to the end of sign-ins without identity knowing them: each
# subscribes at its service module's import (the app imports every domain's router and tasks
# module at start). A hook runs in the caller's transaction.

SessionHook = Callable[[AsyncSession, uuid.UUID], Awaitable[object]]
_session_ended_hooks: list[SessionHook] = []
_all_sessions_ended_hooks: list[SessionHook] = []


def on_session_ended(hook: SessionHook) -> None:
    """Subscribe to the end of one sign-in: `hook(db, session_id)` (logout, a session revoked by
    its owner, a refresh token family revoked as stolen)."""
    if hook not in _session_ended_hooks:
        _session_ended_hooks.append(hook)


def on_all_sessions_ended(hook: SessionHook) -> None:
    """Subscribe to the end of every sign-in of an account: `hook(db, user_id)` (password
    reset). Erasure has its own hooks: app.core.personal_data."""
    if hook not in _all_sessions_ended_hooks:
        _all_sessions_ended_hooks.append(hook)


async def _session_ended(session: AsyncSession, session_id: uuid.UUID) -> None:
    for hook in list(_session_ended_hooks):
        await hook(session, session_id)


async def logout(session: AsyncSession, user: User, session_id: uuid.UUID) -> None:
    await end_session(session, session_id, reason="logout")


async def end_session(session: AsyncSession, session_id: uuid.UUID, *, reason: str) -> None:
    """Revoke a sign-in; subscribers drop what hung off it (its devices' push tokens)."""
    await tokens.revoke_session(session, session_id, reason=reason)
    await _session_ended(session, session_id)


async def reset_password(
    session: AsyncSession, *, phone_raw: str, otp: str, new_password: str, ctx: AuditContext
) -> None:
    phone = require_phone(phone_raw)
    require_strong_password(new_password, phone)
    await consume_otp(session, phone, "reset_password", otp, ctx.ip)
    user = await find_user_by_phone(session, phone)
    if user is None:  # a code was made but never sent to an unknown number
        raise AppError(errors.OTP_EXPIRED)
    user.password_hash = await hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = clock.now()
    ended = await tokens.revoke_user_sessions(session, user.id, reason="password_reset")
    for hook in list(_all_sessions_ended_hooks):
        await hook(session, user.id)
    await audit.record(
        session,
        ctx,
        "identity.password_reset",
        subject_id=user.id,
        details={"sessions_ended": ended},
    )


# ---------------------------------------------------------------- profile and identity


async def get_identity(session: AsyncSession, user_id: uuid.UUID) -> CitizenIdentity | None:
    return await session.get(CitizenIdentity, user_id)


async def active_verification(
    session: AsyncSession, user_id: uuid.UUID
) -> IdentityVerification | None:
    return (
        await session.execute(
            sa.select(IdentityVerification)
            .where(
                col(IdentityVerification.user_id) == user_id,
                col(IdentityVerification.revoked_at).is_(None),
            )
            .order_by(col(IdentityVerification.verified_at).desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def identity_view(identity: CitizenIdentity, *, owner: bool) -> dict[str, Any]:
    number = (
        decrypt_pii(identity.cccd_encrypted, context="cccd")
        if owner
        else mask_cccd(identity.cccd_last4)
    )
    return {
        "cccd": number,
        "full_name": identity.full_name,
        "date_of_birth": identity.date_of_birth,
        "gender": identity.gender,
        "declared_at": identity.declared_at,
    }


async def _identity_and_verification(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[CitizenIdentity | None, IdentityVerification | None]:
    """Both in one round trip: a level 2 verification only exists for a declared identity."""
    row = (
        await session.execute(
            sa.select(CitizenIdentity, IdentityVerification)
            .outerjoin(
                IdentityVerification,
                sa.and_(
                    col(IdentityVerification.user_id) == col(CitizenIdentity.user_id),
                    col(IdentityVerification.revoked_at).is_(None),
                ),
            )
            .where(col(CitizenIdentity.user_id) == user_id)
            .order_by(col(IdentityVerification.verified_at).desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


_users = table_of(User)
_identities = table_of(CitizenIdentity)
_verifications = table_of(IdentityVerification)
_signed_in, _signed_in_conditions = signed_in_account()

# The account's own fields in a profile (ProfileOut), shared by the owner's and the staff view.
_PROFILE_FIELDS = (
    "id",
    "phone",
    "full_name",
    "role",
    "ward_code",
    "locale",
    "email",
    "identity_level",
    "created_at",
)

# The caller's own profile, only while the session behind their token lives: the app's most
# frequent request (every start and resume), so one statement and one round trip.
_MY_PROFILE = Direct(
    sa.select(
        _users.c.id,
        _users.c.phone,
        _users.c.full_name,
        _users.c.role,
        _users.c.ward_code,
        _users.c.locale,
        _users.c.email,
        _users.c.identity_level,
        _users.c.created_at,
        _identities.c.cccd_encrypted,
        _identities.c.full_name.label("identity_full_name"),
        _identities.c.date_of_birth,
        _identities.c.gender,
        _identities.c.declared_at,
        _verifications.c.id.label("verification_id"),
        _verifications.c.level,
        _verifications.c.ward_code.label("verification_ward_code"),
        _verifications.c.document_kind,
        _verifications.c.verified_at,
        _verifications.c.verified_by_id,
    )
    .select_from(
        _signed_in.outerjoin(_identities, _identities.c.user_id == _users.c.id).outerjoin(
            _verifications,
            sa.and_(
                _verifications.c.user_id == _identities.c.user_id,
                _verifications.c.revoked_at.is_(None),
            ),
        )
    )
    .where(*_signed_in_conditions)
    .order_by(_verifications.c.verified_at.desc())
    .limit(1)
)


async def my_profile(user_id: uuid.UUID, session_id: uuid.UUID) -> dict[str, Any] | None:
    """The owner's view of their profile; None when the session has ended or the account gone."""
    row = await _MY_PROFILE.fetch_one(
        {"user_id": user_id, "session_id": session_id, "now": clock.now()}
    )
    if row is None:
        return None
    identity = verification = None
    if row["cccd_encrypted"] is not None:
        identity = {
            "cccd": decrypt_pii(row["cccd_encrypted"], context="cccd"),
            "full_name": row["identity_full_name"],
            "date_of_birth": row["date_of_birth"],
            "gender": row["gender"],
            "declared_at": row["declared_at"],
        }
    if row["verification_id"] is not None:
        verification = {
            "id": row["verification_id"],
            "level": row["level"],
            "ward_code": row["verification_ward_code"],
            "document_kind": row["document_kind"],
            "verified_at": row["verified_at"],
            "verified_by_id": row["verified_by_id"],
        }
    return {
        **{name: row[name] for name in _PROFILE_FIELDS},
        "identity": identity,
        "verification": verification,
    }


async def profile_view(session: AsyncSession, user: User, *, owner: bool) -> dict[str, Any]:
    identity, verification = await _identity_and_verification(session, user.id)
    return {
        **{name: getattr(user, name) for name in _PROFILE_FIELDS},
        "identity": identity_view(identity, owner=owner) if identity else None,
        "verification": verification.model_dump() if verification else None,
    }


async def update_profile(
    session: AsyncSession, user: User, changes: dict[str, Any], ctx: AuditContext
) -> User:
    if "ward_code" in changes and changes["ward_code"] is not None:
        if user.role in {r.value for r in WARD_BOUND_ROLES}:
            raise AppError(errors.ROLE_INVALID)  # staff wards are set by administrators
        await admin_units.get_ward(session, changes["ward_code"])
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = clock.now()
    await session.flush()
    await audit.record(
        session,
        ctx,
        "identity.profile_updated",
        subject_id=user.id,
        details={"fields": sorted(changes)},
    )
    return user


def _checked_cccd(cccd: str, *, date_of_birth: date, gender: str) -> str:
    number = cccd.strip().replace(" ", "")
    today = clock.now().astimezone(clock.LOCAL_TZ).date()
    problem = check_cccd(number, gender=gender, date_of_birth=date_of_birth, today=today)  # type: ignore[arg-type]
    if problem:
        vi, en = CCCD_REASONS[problem]
        raise AppError(
            errors.INVALID_CCCD,
            params={"reason_vi": vi, "reason_en": en},
            extra={"reason": problem},
        )
    return number


async def _cccd_holder(session: AsyncSession, index: str) -> uuid.UUID | None:
    return (
        await session.execute(
            sa.select(col(CitizenIdentity.user_id)).where(col(CitizenIdentity.cccd_index) == index)
        )
    ).scalar_one_or_none()


async def declare_identity(
    session: AsyncSession,
    user: User,
    *,
    cccd: str,
    full_name: str,
    date_of_birth: date,
    gender: str,
    ctx: AuditContext,
) -> User:
    """Self-declared identity (level 1). Declarations are limited per account and per address,
    so the collision answer (another account declared this number first) cannot be used to
    enumerate who is registered; a collision is settled in person at the ward
    (`verify_in_person`), where the document holder's level 2 takes the number back."""
    settings = get_identity_settings()
    await ratelimit.hit(
        session,
        f"cccd-declare:user:{user.id}",
        limit=settings.cccd_declarations_per_account_per_day,
        window_seconds=86400,
    )
    await ratelimit.hit(
        session,
        f"cccd-declare:ip:{ctx.ip}",
        limit=settings.cccd_declarations_per_ip_per_day,
        window_seconds=86400,
    )
    number = _checked_cccd(cccd, date_of_birth=date_of_birth, gender=gender)
    holder = await _cccd_holder(session, blind_index(number, context="cccd"))
    if holder is not None and holder != user.id:
        await audit.record(
            session,
            ctx,
            "identity.cccd_collision",
            subject_id=user.id,
            details={"held_by": str(holder)},
        )
        raise AppError(errors.CCCD_TAKEN, commit=True)
    changed = await _set_identity(
        session, user, number, full_name=full_name, date_of_birth=date_of_birth, gender=gender
    )
    if changed:
        # What staff verified in person no longer describes this identity.
        await _revoke_verifications(session, user.id, by=user.id, reason="identity_changed")
        await _set_level(session, user, 1)
    await audit.record(
        session, ctx, "identity.declared", subject_id=user.id, details={"changed": changed}
    )
    return user


async def _set_identity(
    session: AsyncSession,
    user: User,
    number: str,
    *,
    full_name: str,
    date_of_birth: date,
    gender: str,
) -> bool:
    """Store a (checked) identity for `user`; True when it differs from the one held before."""
    index = blind_index(number, context="cccd")
    identity = await get_identity(session, user.id)
    changed = identity is None or (
        identity.cccd_index,
        identity.full_name,
        identity.date_of_birth,
        identity.gender,
    ) != (index, full_name, date_of_birth, gender)
    if identity is None:
        identity = CitizenIdentity(
            user_id=user.id,
            cccd_encrypted="",
            cccd_index=index,
            cccd_last4="",
            full_name=full_name,
            date_of_birth=date_of_birth,
            gender=gender,
        )
        session.add(identity)
    identity.cccd_encrypted = encrypt_pii(number, context="cccd")
    identity.cccd_index, identity.cccd_last4 = index, number[-4:]
    identity.full_name, identity.date_of_birth, identity.gender = full_name, date_of_birth, gender
    identity.declared_at = clock.now()
    user.updated_at = clock.now()
    try:
        await session.flush()
    except sa.exc.IntegrityError:  # declared by another account meanwhile
        raise AppError(errors.CCCD_TAKEN) from None
    return changed


async def _set_level(session: AsyncSession, user: User, level: int) -> None:
    """The one place an identity level changes: sessions that relied on a higher level are
    capped or ended by the token service."""
    if user.identity_level == level:
        return
    user.identity_level = level
    user.updated_at = clock.now()
    await session.flush()
    await tokens.identity_level_changed(session, user.id, level)


async def _revoke_verifications(
    session: AsyncSession, user_id: uuid.UUID, *, by: uuid.UUID, reason: str
) -> int:
    result = await session.execute(
        sa.update(IdentityVerification)
        .where(
            col(IdentityVerification.user_id) == user_id,
            col(IdentityVerification.revoked_at).is_(None),
        )
        .values(revoked_at=clock.now(), revoked_by_id=by, revoke_reason=reason)
    )
    return rows_matched(result) or 0


# ---------------------------------------------------------------- staff, ward scope


def can_act_on(staff: User, citizen: User) -> bool:
    """City admins act city-wide; ward staff only on citizens of their own ward."""
    if staff.role == Role.CITY_ADMIN:
        return True
    return (
        staff.role in STAFF_ROLES
        and staff.ward_code is not None
        and citizen.ward_code == staff.ward_code
    )


async def citizen_for_staff(session: AsyncSession, staff: User, citizen_id: uuid.UUID) -> User:
    """404 (not 403) outside the staff member's ward: existence is not leaked."""
    citizen = await session.get(User, citizen_id)
    if citizen is None or citizen.status == "deleted" or not can_act_on(staff, citizen):
        raise AppError(errors.USER_NOT_FOUND)
    return citizen


async def staff_read_citizen(
    session: AsyncSession, staff: User, citizen_id: uuid.UUID, reason: str, ctx: AuditContext
) -> dict[str, Any]:
    citizen = await citizen_for_staff(session, staff, citizen_id)
    await audit.record(session, ctx, "identity.staff_read", subject_id=citizen.id, reason=reason)
    return await profile_view(session, citizen, owner=False)


async def staff_find_citizen(
    session: AsyncSession, staff: User, raw_phone: str, reason: str, ctx: AuditContext
) -> dict[str, Any]:
    phone = require_phone(raw_phone)
    citizen = await find_user_by_phone(session, phone)
    if citizen is None:
        raise AppError(errors.USER_NOT_FOUND)
    return await staff_read_citizen(session, staff, citizen.id, reason, ctx)


@dataclass
class DocumentIdentity:
    """What staff read from the document shown at the counter, to settle a number that another
    account declared first."""

    full_name: str
    date_of_birth: date
    gender: str


async def verify_in_person(
    session: AsyncSession,
    staff: User,
    citizen_id: uuid.UUID,
    *,
    document_kind: str,
    cccd: str,
    note: str | None,
    ctx: AuditContext,
    document: DocumentIdentity | None = None,
) -> IdentityVerification:
    """Level 2: staff saw the document in person. With `document` (its details), this also
    settles a CCCD that another account declared first and nobody verified: the person holding
    the card is its owner, the other declaration is released (its account drops to level 0)."""
    citizen = await citizen_for_staff(session, staff, citizen_id)
    identity = await get_identity(session, citizen.id)
    index = blind_index(cccd.strip().replace(" ", ""), context="cccd")
    if identity is None or identity.cccd_index != index:
        if document is None:
            raise AppError(
                errors.IDENTITY_REQUIRED if identity is None else errors.DOCUMENT_MISMATCH
            )
        number = _checked_cccd(cccd, date_of_birth=document.date_of_birth, gender=document.gender)
        await _release_claim(session, index, keep=citizen.id, ctx=ctx)
        await _set_identity(
            session,
            citizen,
            number,
            full_name=document.full_name,
            date_of_birth=document.date_of_birth,
            gender=document.gender,
        )
    await _revoke_verifications(session, citizen.id, by=staff.id, reason="superseded")
    verification = IdentityVerification(
        user_id=citizen.id,
        verified_by_id=staff.id,
        ward_code=staff.ward_code or citizen.ward_code or "",
        document_kind=document_kind,
        document_note=note,
    )
    session.add(verification)
    await _set_level(session, citizen, 2)
    await session.flush()
    await audit.record(
        session,
        ctx,
        "identity.verified_level2",
        subject_id=citizen.id,
        reason=note,
        details={"document_kind": document_kind, "verification_id": str(verification.id)},
    )
    return verification


async def _release_claim(
    session: AsyncSession, index: str, *, keep: uuid.UUID, ctx: AuditContext
) -> None:
    """Take a CCCD back from an account that declared it without being verified."""
    holder_id = await _cccd_holder(session, index)
    if holder_id is None or holder_id == keep:
        return
    if await active_verification(session, holder_id) is not None:
        raise AppError(errors.CCCD_VERIFIED_ELSEWHERE)
    holder = await session.get(User, holder_id)
    await session.execute(
        sa.delete(CitizenIdentity).where(col(CitizenIdentity.user_id) == holder_id)
    )
    if holder is not None:
        await _set_level(session, holder, 0)
    await audit.record(
        session,
        ctx,
        "identity.cccd_claim_released",
        subject_id=holder_id,
        details={"to_user_id": str(keep)},
    )


async def revoke_verification(
    session: AsyncSession, staff: User, citizen_id: uuid.UUID, *, reason: str, ctx: AuditContext
) -> User:
    citizen = await citizen_for_staff(session, staff, citizen_id)
    if await _revoke_verifications(session, citizen.id, by=staff.id, reason=reason) == 0:
        raise AppError(errors.VERIFICATION_NOT_FOUND)
    await _set_level(session, citizen, 1 if await get_identity(session, citizen.id) else 0)
    await audit.record(
        session, ctx, "identity.level2_revoked", subject_id=citizen.id, reason=reason
    )
    return citizen


# ---------------------------------------------------------------- operators (CLI)


async def create_user(
    session: AsyncSession,
    *,
    phone_raw: str,
    password: str,
    full_name: str,
    role: str,
    ward_code: str | None,
    ctx: AuditContext | None = None,
) -> User:
    try:
        role_value = Role(role)
    except ValueError:
        raise AppError(errors.ROLE_INVALID) from None
    if role_value in WARD_BOUND_ROLES and not ward_code:
        raise AppError(errors.ROLE_INVALID)
    phone = require_phone(phone_raw)
    require_strong_password(password, phone)
    if ward_code:
        await admin_units.get_ward(session, ward_code)
    if await find_user_by_phone(session, phone) is not None:
        raise AppError(errors.PHONE_TAKEN)
    user = User(
        phone=phone,
        password_hash=await hash_password(password),
        full_name=full_name,
        role=role_value.value,
        ward_code=ward_code,
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        ctx,
        "identity.user_created",
        subject_id=user.id,
        details={"role": role_value.value, "ward_code": ward_code},
    )
    return user


# ---------------------------------------------------------------- export and erasure


def _row(model: Any, *, exclude: set[str] | None = None) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=exclude or set())


async def export_account(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    user = await session.get(User, user_id)
    assert user is not None
    identity = await get_identity(session, user_id)
    verifications = (
        await session.execute(
            sa.select(IdentityVerification).where(col(IdentityVerification.user_id) == user_id)
        )
    ).scalars()
    consents = (
        await session.execute(sa.select(ConsentRecord).where(col(ConsentRecord.user_id) == user_id))
    ).scalars()
    return {
        "profile": _row(user, exclude={"password_hash"}),
        "identity": (
            {
                **_row(identity, exclude={"cccd_encrypted", "cccd_index"}),
                "cccd": decrypt_pii(identity.cccd_encrypted, context="cccd"),
            }
            if identity
            else None
        ),
        # Which ward verified, not which staff account: another person's data is not theirs.
        "identity_verifications": [
            _row(v, exclude={"verified_by_id", "revoked_by_id"}) for v in verifications
        ],
        "consents": [_row(c) for c in consents],
        "sessions": [_row(s) for s in await tokens.list_active_sessions(session, user_id)],
        "audit_log": await audit.export_about(session, user_id),
    }


async def erase_account(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    user = await session.get(User, user_id)
    assert user is not None
    await tokens.delete_user_sessions(session, user_id)
    await session.execute(sa.delete(CitizenIdentity).where(col(CitizenIdentity.user_id) == user_id))
    await session.execute(
        sa.delete(IdentityVerification).where(col(IdentityVerification.user_id) == user_id)
    )
    if user.phone:
        await session.execute(sa.delete(OtpChallenge).where(col(OtpChallenge.phone) == user.phone))
    await session.execute(
        sa.update(ConsentRecord)
        .where(col(ConsentRecord.user_id) == user_id, col(ConsentRecord.withdrawn_at).is_(None))
        .values(withdrawn_at=clock.now())
    )
    user.phone = user.password_hash = user.full_name = user.email = None
    user.ward_code = None
    user.identity_level = 0
    user.status = "deleted"
    user.deleted_at = user.updated_at = clock.now()
    await session.flush()
    retention = get_settings().audit_retention_days
    return [
        Retained(
            "audit_log",
            "Nhật ký truy cập và thay đổi dữ liệu cá nhân được lưu theo Luật Bảo vệ dữ liệu cá "
            "nhân 2025 để chứng minh việc xử lý hợp pháp; không còn gắn với số điện thoại hay tên.",
            "The log of who read or changed your personal data is kept under the 2025 Personal "
            "Data Protection Law as proof of lawful processing; it no longer carries your phone "
            "number or name.",
            retention,
        ),
        Retained(
            "consent_records",
            "Bản ghi đồng ý (phiên bản chính sách, thời điểm) được giữ làm bằng chứng, đã đánh "
            "dấu rút lại.",
            "Consent records (policy version and time) are kept as evidence, marked withdrawn.",
            retention,
        ),
    ]


async def delete_account(
    session: AsyncSession, user: User, password: str, ctx: AuditContext
) -> tuple[list[str], list[Retained]]:
    from app.core import personal_data

    if user.role != Role.CITIZEN and user.role != Role.COMMUNITY_HELPER:
        raise AppError(errors.CANNOT_DELETE_STAFF)
    if not await verify_password(user.password_hash, password):
        raise AppError(errors.WRONG_PASSWORD)
    await audit.record(session, ctx, "identity.account_deleted", subject_id=user.id)
    return await personal_data.erase_all(session, user.id)


def seconds_until(moment: datetime) -> int:
    return max(0, int((moment - clock.now()).total_seconds()))


def _register_personal_data() -> None:
    from app.core import personal_data

    personal_data.register("account", exporter=export_account, eraser=erase_account)


_register_personal_data()


# ---------------------------------------------------------------- audiences (for other domains)

CITIZEN_ROLES = (Role.CITIZEN.value, Role.COMMUNITY_HELPER.value)
WARD_STAFF_ROLES = (Role.WARD_STAFF.value, Role.WARD_ADMIN.value)


def citizen_ids(
    ward_code: str | None,
    *,
    after: uuid.UUID | None = None,
    upto: uuid.UUID | None = None,
    limit: int | None = None,
) -> sa.Select[uuid.UUID]:
    """Active citizens of a ward (their home ward), or of the city when `ward_code` is None, in id
    order: a query other domains count, page by id (`after`, `upto`) or use as a subquery."""
    query = sa.select(col(User.id)).where(
        col(User.status) == "active", col(User.role).in_(CITIZEN_ROLES)
    )
    if ward_code is not None:
        query = query.where(col(User.ward_code) == ward_code)
    if after is not None:
        query = query.where(col(User.id) > after)
    if upto is not None:
        query = query.where(col(User.id) <= upto)
    query = query.order_by(col(User.id))
    return query.limit(limit) if limit is not None else query


async def ward_staff_ids(session: AsyncSession, ward_code: str) -> list[uuid.UUID]:
    rows = await session.execute(
        sa.select(col(User.id)).where(
            col(User.status) == "active",
            col(User.role).in_(WARD_STAFF_ROLES),
            col(User.ward_code) == ward_code,
        )
    )
    return list(rows.scalars())


async def active_user_ids(session: AsyncSession, user_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The given accounts that are still active, in the given order."""
    if not user_ids:
        return []
    rows = await session.execute(
        sa.select(col(User.id)).where(col(User.id).in_(user_ids), col(User.status) == "active")
    )
    found = set(rows.scalars())
    return [i for i in user_ids if i in found]


async def locales(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each account's app language (in batches: announcements reach whole wards)."""
    out: dict[uuid.UUID, str] = {}
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: an IN list of 1,000 ids is 1,000 parameters for SQLAlchemy to
        # render and the driver to encode (measured: the largest cost of a fan-out batch job
        # outside the FCM client).
        ids = sa.bindparam("ids", user_ids, type_=postgresql.ARRAY(sa.Uuid()))
        rows = await session.execute(
            sa.select(col(User.id), col(User.locale)).where(col(User.id) == sa.any_(ids))
        )
        return {user_id: locale for user_id, locale in rows}
    for start in range(0, len(user_ids), 1000):
        rows = await session.execute(
            sa.select(col(User.id), col(User.locale)).where(
                col(User.id).in_(user_ids[start : start + 1000])
            )
        )
        out.update({user_id: locale for user_id, locale in rows})
    return out
