"""The rules of public-service dossiers: catalogue, submission, the staff workflow, deadlines,
public look-up and statistics. Services flush; the request's session commits."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import sqlalchemy as sa
from jsonschema import Draft202012Validator
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.admin_units import service as admin_units
from app.core import audit, clock, deep_links, jobs, ratelimit
from app.core.audit import AuditContext
from app.core.db import Direct, UTCDateTime
from app.core.errors import AppError
from app.core.i18n import Language
from app.core.personal_data import Retained
from app.core.tables import table_of
from app.dossiers import errors, form_pii
from app.dossiers.calendar import get_calendar, local_date
from app.dossiers.catalogue import PROCEDURES
from app.dossiers.config import get_dossier_settings
from app.dossiers.models import (
    Dossier,
    DossierCounter,
    DossierDocument,
    DossierEvent,
    DossierIdempotencyKey,
    Procedure,
)
from app.dossiers.schemas import AttachmentIn, DossierCreate, SupplementIn, TransitionIn
from app.dossiers.text import fold, like_escape
from app.dossiers.workflow import (
    OPEN,
    TRANSITIONS,
    Actor,
    Status,
    Transition,
    allowed_actions,
    is_allowed,
)
from app.identity import service as identity
from app.identity.roles import STAFF_ROLES, Role
from app.identity.service import Account
from app.media import service as media

STATUS_CHANGED = "dossier.status_changed"
OPEN_STATUSES = [Status.RECEIVED.value, Status.IN_PROGRESS.value]
MAX_PAGE = 100

# ---------------------------------------------------------------- catalogue


def _search_text(p: dict[str, Any]) -> str:
    return fold(" ".join([p["code"], p["name"], p["name_en"], p["field"], p["field_en"]]))


async def sync_catalogue(session: AsyncSession) -> int:
    """Upsert the seeded procedures (idempotent; run at start-up and by tests). One
    INSERT ... ON CONFLICT per procedure, so several server processes starting at once agree."""
    table = table_of(Procedure)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for data in PROCEDURES:
        values = {**data, "search_text": _search_text(data), "active": True}
        stmt = insert(table).values(**values)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.code],
                set_={k: stmt.excluded[k] for k in values if k != "code"},
            )
        )
    return len(PROCEDURES)


async def search_procedures(session: AsyncSession, q: str | None) -> list[Procedure]:
    query = (
        sa.select(Procedure).where(col(Procedure.active).is_(True)).order_by(col(Procedure.code))
    )
    for term in fold(q or "").split(" "):
        if term:
            query = query.where(
                col(Procedure.search_text).like(f"%{like_escape(term)}%", escape="\\")
            )
    return list((await session.execute(query)).scalars())


async def get_procedure(session: AsyncSession, code: str) -> Procedure:
    procedure = await session.get(Procedure, code)
    if procedure is None or not procedure.active:
        raise AppError(errors.PROCEDURE_NOT_FOUND, params={"code": code})
    return procedure


def validate_form(schema: dict[str, Any], form: dict[str, Any]) -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problems = sorted(validator.iter_errors(form), key=lambda e: list(e.absolute_path))
    if not problems:
        return
    field_errors = []
    for problem in problems:
        path = ["form", *(str(p) for p in problem.absolute_path)]
        if problem.validator == "required":  # name the missing property itself
            missing = next(iter(set(problem.validator_value) - set(problem.instance or {})), None)
            if missing:
                path.append(missing)
        field_errors.append(
            {"field": ".".join(path), "code": str(problem.validator), "message": problem.message}
        )
    raise AppError(errors.FORM_INVALID, extra={"errors": field_errors})


# ---------------------------------------------------------------- documents


async def check_documents(
    session: AsyncSession,
    procedure: Procedure,
    owner_id: uuid.UUID,
    attachments: Sequence[AttachmentIn],
    *,
    require_all: bool,
) -> dict[uuid.UUID, Any]:
    """Check the attachments against the procedure; returns their files by id."""
    kinds = {d["code"]: d for d in procedure.documents}
    for index, item in enumerate(attachments):
        if item.document_code not in kinds:
            raise AppError(
                errors.DOCUMENT_UNKNOWN,
                params={"document": item.document_code},
                extra={"errors": [_field(index, "document_code", "unknown")]},
            )
    owned = await media.get_owned(session, (a.media_id for a in attachments), owner_id)
    for index, item in enumerate(attachments):
        kind, file = kinds[item.document_code], owned.get(item.media_id)
        if file is None:
            raise AppError(
                errors.ATTACHMENT_NOT_FOUND,
                extra={"errors": [_field(index, "media_id", "not_found")]},
            )
        if file.content_type not in kind["formats"]:
            raise AppError(
                errors.DOCUMENT_TYPE_NOT_ACCEPTED,
                params={"document": kind["name"]},
                extra={
                    "accepted": kind["formats"],
                    "errors": [_field(index, "media_id", "type_not_accepted")],
                },
            )
        if file.size_bytes > kind["max_bytes"]:
            raise AppError(
                errors.DOCUMENT_TOO_LARGE,
                params={"document": kind["name"]},
                extra={
                    "max_bytes": kind["max_bytes"],
                    "errors": [_field(index, "media_id", "too_large")],
                },
            )
    if require_all:
        given = {a.document_code for a in attachments}
        missing = [d for d in procedure.documents if d["required"] and d["code"] not in given]
        if missing:
            raise AppError(
                errors.DOCUMENT_MISSING,
                params={"documents": ", ".join(d["name"] for d in missing)},
                extra={"missing": [d["code"] for d in missing]},
            )
    return owned


def _field(index: int, name: str, code: str) -> dict[str, str]:
    return {"field": f"documents.{index}.{name}", "code": code, "message": code}


async def _attach(
    session: AsyncSession,
    dossier: Dossier,
    attachments: Sequence[AttachmentIn],
    stage: str,
    by: uuid.UUID,
) -> list[DossierDocument]:
    documents = [
        DossierDocument(
            dossier_id=dossier.id,
            document_code=item.document_code,
            media_id=item.media_id,
            stage=stage,
            added_by_id=by,
        )
        for item in attachments
    ]
    session.add_all(documents)
    await media.hold(session, (a.media_id for a in attachments))
    await session.flush()
    return documents


# ---------------------------------------------------------------- submission


async def _next_code(session: AsyncSession, agency_code: str, now: datetime) -> str:
    """`{agency}-{yymmdd}-{nnnn}`: a per-agency daily sequence from a counter row bumped in this
    transaction. On PostgreSQL the upsert holds the row lock until commit, so concurrent
    submissions to one agency queue here and a rolled-back one gives its number back."""
    day = local_date(now).strftime("%y%m%d")
    table = table_of(DossierCounter)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(table)
        .values(agency_code=agency_code, day=day, last=1)
        .on_conflict_do_update(
            index_elements=[table.c.agency_code, table.c.day], set_={"last": table.c.last + 1}
        )
        .returning(table.c.last)
    )
    number = (await session.execute(stmt)).scalar_one()
    return f"{agency_code}-{day}-{number:04d}"


def _request_hash(body: DossierCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_idempotency_key(key: str | None) -> str:
    """Required (draft-ietf-httpapi-idempotency-key-header): a phone on a weak network retries,
    and a retry must never file a second dossier."""
    if key is None:
        raise AppError(errors.IDEMPOTENCY_KEY_REQUIRED)
    if not 8 <= len(key) <= 200 or not key.isprintable() or not key.isascii():
        raise AppError(errors.IDEMPOTENCY_KEY_INVALID)
    return key


async def _claim_key(
    session: AsyncSession, citizen_id: uuid.UUID, key: str, request_hash: str
) -> Dossier | None:
    """Reserve the key, or return the dossier an earlier request with it created.

    The reservation is a row in this transaction: a concurrent request with the same key waits
    on it (PostgreSQL) and then finds the committed dossier.
    """
    table = table_of(DossierIdempotencyKey)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(table)
        .values(citizen_id=citizen_id, key=key, request_hash=request_hash, created_at=clock.now())
        .on_conflict_do_nothing(index_elements=[table.c.citizen_id, table.c.key])
        .returning(table.c.key)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is not None:
        return None
    record = (
        await session.execute(
            sa.select(DossierIdempotencyKey).where(
                col(DossierIdempotencyKey.citizen_id) == citizen_id,
                col(DossierIdempotencyKey.key) == key,
            )
        )
    ).scalar_one()
    if record.request_hash != request_hash or record.dossier_id is None:
        raise AppError(errors.IDEMPOTENCY_KEY_REUSED)
    return await session.get(Dossier, record.dossier_id)


async def _receiving_agency(session: AsyncSession, procedure: Procedure, ward_code: str) -> str:
    ward = await admin_units.find_unit(session, ward_code)
    if ward is None or ward.level not in admin_units.WARD_LEVELS:
        raise AppError(
            errors.AGENCY_INVALID,
            extra={
                "errors": [{"field": "ward_code", "code": "not_found", "message": "no such ward"}]
            },
        )
    if procedure.competent_level == "province":
        # Province-level procedures go to the province's queue whichever ward received them.
        return ward.parent_code or ward.code
    return ward.code


@dataclass
class Known:
    """What a request holds of a dossier it has just created: `view` need not read it back."""

    procedure: Procedure
    documents: list[DossierDocument]
    files: dict[uuid.UUID, Any]
    events: list[DossierEvent]


async def submit(
    session: AsyncSession, citizen: Account, body: DossierCreate, idempotency_key: str | None
) -> tuple[Dossier, Known | None]:
    """Create a dossier (with what `view` needs of it), or return the one this
    Idempotency-Key already created (with None)."""
    key = check_idempotency_key(idempotency_key)
    earlier = await _claim_key(session, citizen.id, key, _request_hash(body))
    if earlier is not None:
        return earlier, None
    procedure = await get_procedure(session, body.procedure_code)
    agency = await _receiving_agency(session, procedure, body.ward_code)
    validate_form(procedure.form_schema, body.form)
    files = await check_documents(session, procedure, citizen.id, body.documents, require_all=True)
    now = clock.now()
    dossier = Dossier(
        code="",
        procedure_code=procedure.code,
        citizen_id=citizen.id,
        agency_code=agency,
        status=Status.SUBMITTED,
        applicant_name=citizen.full_name,
        applicant_phone_last4=citizen.phone[-4:] if citizen.phone else None,
        period=f"{local_date(now):%Y-%m}",
        submitted_at=now,
        updated_at=now,
    )
    dossier.form = form_pii.seal(procedure.form_schema, body.form, dossier.id)
    # A provisional unique code: the daily number is taken last, so the agency's counter row
    # stays locked for as little of the transaction as possible.
    dossier.code = f"~{dossier.id.hex}"
    session.add(dossier)
    await session.flush()
    documents = await _attach(session, dossier, body.documents, "submission", citizen.id)
    await session.execute(
        sa.update(DossierIdempotencyKey)
        .where(
            col(DossierIdempotencyKey.citizen_id) == citizen.id,
            col(DossierIdempotencyKey.key) == key,
        )
        .values(dossier_id=dossier.id)
    )
    dossier.code = await _next_code(session, agency, now)
    await session.flush()
    event = await _record(
        session, dossier, TRANSITIONS["submit"], None, citizen, note=None, data={}
    )
    return dossier, Known(procedure, documents, files, [event])


# ---------------------------------------------------------------- timeline and jobs


async def _record(
    session: AsyncSession,
    dossier: Dossier,
    transition: Transition,
    from_status: str | None,
    actor: Account | None,
    *,
    note: str | None,
    data: dict[str, Any],
) -> DossierEvent:
    """Write who/when/why, and tell the notifications domain when the status changed."""
    event = DossierEvent(
        dossier_id=dossier.id,
        at=clock.now(),
        actor_id=actor.id if actor else None,
        actor_role=actor.role if actor else Actor.SYSTEM,
        action=transition.action,
        from_status=from_status,
        to_status=dossier.status,
        note=note,
        data=data,
    )
    session.add(event)
    await session.flush()
    if from_status != dossier.status:
        await jobs.enqueue(
            session,
            STATUS_CHANGED,
            {
                "dossier_id": str(dossier.id),
                "dossier_code": dossier.code,
                "status": dossier.status,
                "previous_status": from_status,
                "action": transition.action,
                "citizen_id": str(dossier.citizen_id),
                "procedure_code": dossier.procedure_code,
                "deep_link": deep_links.dossier(dossier.code),
                "event_id": str(event.id),
                "at": event.at.isoformat(),
            },
            dedupe_key=f"{STATUS_CHANGED}:{event.id}",
        )
    return event


# ---------------------------------------------------------------- reading


async def _load(session: AsyncSession, code: str, *, lock: bool = False) -> Dossier | None:
    query = sa.select(Dossier).where(col(Dossier.code) == code)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def for_citizen(
    session: AsyncSession, citizen: Account, code: str, *, lock: bool = False
) -> Dossier:
    dossier = await _load(session, code, lock=lock)
    if dossier is None or dossier.citizen_id != citizen.id:
        raise AppError(errors.DOSSIER_NOT_FOUND)
    return dossier


def staff_sees(staff: Account, dossier: Dossier) -> bool:
    """City admins see every queue (the province's included); ward staff only their ward's."""
    if staff.role == Role.CITY_ADMIN:
        return True
    return staff.role in STAFF_ROLES and staff.ward_code == dossier.agency_code


async def for_staff(
    session: AsyncSession, staff: Account, code: str, *, lock: bool = False
) -> Dossier:
    """404, not 403, outside the staff member's scope: existence is not leaked."""
    dossier = await _load(session, code, lock=lock)
    if dossier is None or not staff_sees(staff, dossier):
        raise AppError(errors.DOSSIER_NOT_FOUND)
    return dossier


def _summary(d: Dossier, procedure: Procedure | None, language: Language) -> dict[str, Any]:
    name = "" if procedure is None else (procedure.name if language == "vi" else procedure.name_en)
    return _summary_row(
        d.code,
        d.procedure_code,
        name,
        d.agency_code,
        d.status,
        d.submitted_at,
        d.received_at,
        d.due_at,
        d.timeliness,
        d.paused_at,
        now=clock.now(),
    )


def _summary_row(
    code: str,
    procedure_code: str,
    procedure_name: str,
    agency_code: str,
    status: str,
    submitted_at: datetime,
    received_at: datetime | None,
    due_at: datetime | None,
    timeliness: str | None,
    paused_at: datetime | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    return {
        "code": code,
        "procedure_code": procedure_code,
        "procedure_name": procedure_name,
        "agency_code": agency_code,
        "status": status,
        "submitted_at": submitted_at,
        "received_at": received_at,
        "due_at": due_at,
        "timeliness": timeliness,
        "overdue": status in OPEN and due_at is not None and due_at < now,
        "paused": paused_at is not None,
    }


async def view(
    session: AsyncSession,
    dossier: Dossier,
    language: Language,
    *,
    staff: bool,
    known: Known | None = None,
) -> dict[str, Any]:
    procedure: Procedure | None
    docs: Sequence[DossierDocument]
    events: Sequence[DossierEvent]
    if known is not None:  # just created by this request: nothing to read back
        procedure, docs, files, events = (
            known.procedure,
            known.documents,
            known.files,
            known.events,
        )
    else:
        procedure, docs, files, events = await _view_parts(session, dossier)
    actor = Actor.STAFF if staff else Actor.CITIZEN
    out = _summary(dossier, procedure, language) | {
        "form": form_pii.unseal(dossier.form, dossier.id),
        "documents": [
            {
                "document_code": d.document_code,
                "media_id": d.media_id,
                "stage": d.stage,
                "content_type": files[d.media_id].content_type,
                "size_bytes": files[d.media_id].size_bytes,
                "added_at": d.added_at,
            }
            for d in docs
            if d.media_id in files
        ],
        "legal_due_at": dossier.legal_due_at,
        # Which staff member handles it is the staff's business (and their personal data): the
        # citizen sees roles and steps, never a staff account.
        "assignee_id": dossier.assignee_id if staff else None,
        "supplement_note": dossier.supplement_note,
        "supplement_documents": dossier.supplement_documents,
        "supplement_due_at": dossier.supplement_due_at,
        "outcome_note": dossier.outcome_note,
        "outcome_reasons": dossier.outcome_reasons,
        "result_media_id": dossier.result_media_id,
        "processing_days": dossier.processing_days,
        "rating": dossier.rating,
        "rating_comment": dossier.rating_comment,
        "allowed_actions": [
            a
            for a in allowed_actions(dossier.status, actor)
            if not (a == "rate" and dossier.rating is not None)
            and not (a == "request_supplement" and dossier.supplement_requests)
            and not (
                a == "supplement"
                and dossier.supplement_due_at is not None
                and dossier.supplement_due_at < clock.now()
            )
        ],
        "timeline": [
            {
                "at": e.at,
                "action": e.action,
                "label": getattr(TRANSITIONS.get(e.action), language, e.action),
                "from_status": e.from_status,
                "to_status": e.to_status,
                "actor_role": e.actor_role,
                "actor_id": e.actor_id if staff else None,
                "note": e.note,
                "data": e.data if staff else _citizen_data(e.data),
            }
            for e in events
        ],
    }
    if staff:
        out |= {"citizen_id": dossier.citizen_id, "applicant_name": dossier.applicant_name}
    return out


STAFF_ONLY_EVENT_DATA = frozenset({"assignee_id"})


def _citizen_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in STAFF_ONLY_EVENT_DATA}


async def _view_parts(
    session: AsyncSession, dossier: Dossier
) -> tuple[
    Procedure | None, Sequence[DossierDocument], dict[uuid.UUID, Any], Sequence[DossierEvent]
]:
    procedure = await session.get(Procedure, dossier.procedure_code)
    docs = (
        (
            await session.execute(
                sa.select(DossierDocument)
                .where(col(DossierDocument.dossier_id) == dossier.id)
                .order_by(col(DossierDocument.added_at), col(DossierDocument.id))
            )
        )
        .scalars()
        .all()
    )
    files = await media.get_many(session, (d.media_id for d in docs))
    events = (
        (
            await session.execute(
                sa.select(DossierEvent)
                .where(col(DossierEvent.dossier_id) == dossier.id)
                .order_by(col(DossierEvent.at), col(DossierEvent.id))
            )
        )
        .scalars()
        .all()
    )
    return procedure, docs, files, events


def encode_cursor(due_at: datetime | None, ident: uuid.UUID) -> str:
    key = [due_at.isoformat() if due_at else None, str(ident)]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, by_due: bool) -> tuple[datetime | None, uuid.UUID]:
    try:
        due, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        due_at = datetime.fromisoformat(due) if due else None
        if by_due != (due_at is not None):
            raise ValueError("cursor of another ordering")
        return due_at, uuid.UUID(ident)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise AppError(errors.CURSOR_INVALID) from None


# Lists read only a summary's columns straight from the tables (no ORM objects, no JSON columns
# decoded) with one statement per combination of filters, built once: building, cache-keying
# and loading 20 full Dossier objects cost four times the query itself.
_D = table_of(Dossier).c
_P = table_of(Procedure).c
# Literals, not parameters, and spelled as the partial index's predicate, so PostgreSQL can use
# `ix_dossiers_open_due` in the generic plan of the prepared statement too.
_IS_OPEN = _D.status.in_([sa.literal_column(f"'{s}'") for s in OPEN_STATUSES])


@dataclass(frozen=True)
class _ListShape:
    """Which filters a list uses; each shape has its own prebuilt statement."""

    citizen: bool = False
    ward: bool = False  # ward staff see their ward only
    agency: bool = False
    statuses: int = 0  # how many statuses are asked for (one parameter each)
    procedure: bool = False
    assignee: bool = False
    overdue: bool | None = None
    submitted_from: bool = False
    submitted_to: bool = False
    cursor: bool = False
    english: bool = False

    @property
    def by_due(self) -> bool:
        return self.overdue is True


@lru_cache(maxsize=512)
def _list_statement(shape: _ListShape) -> sa.Select[Any]:
    """Keyset pages: newest first (UUIDv7 ids are time-ordered), or, for overdue dossiers, most
    overdue first along `ix_dossiers_open_due` (agency, due_at, id)."""
    overdue = sa.and_(_IS_OPEN, _D.due_at < sa.bindparam("now"))
    conditions = [
        condition
        for wanted, condition in (
            (shape.citizen, _D.citizen_id == sa.bindparam("citizen_id")),
            (shape.ward, _D.agency_code == sa.bindparam("ward")),
            (shape.agency, _D.agency_code == sa.bindparam("agency")),
            (
                shape.statuses > 0,
                _D.status.in_(
                    [
                        sa.bindparam(f"status_{n}", type_=_D.status.type)
                        for n in range(shape.statuses)
                    ]
                ),
            ),
            (shape.procedure, _D.procedure_code == sa.bindparam("procedure_code")),
            (shape.assignee, _D.assignee_id == sa.bindparam("assignee_id")),
            (shape.overdue is True, overdue),
            (shape.overdue is False, sa.not_(overdue)),
            (shape.submitted_from, _D.submitted_at >= sa.bindparam("submitted_from")),
            (shape.submitted_to, _D.submitted_at < sa.bindparam("submitted_to")),
        )
        if wanted
    ]
    if shape.cursor and shape.by_due:
        conditions.append(
            sa.tuple_(_D.due_at, _D.id)
            > sa.tuple_(
                sa.bindparam("cursor_due", type_=UTCDateTime()),
                sa.bindparam("cursor_id", type_=sa.Uuid()),
            )
        )
    elif shape.cursor:
        conditions.append(_D.id < sa.bindparam("cursor_id"))
    return (
        sa.select(
            _D.id,
            _D.code,
            _D.procedure_code,
            (_P.name_en if shape.english else _P.name).label("procedure_name"),
            _D.agency_code,
            _D.status,
            _D.submitted_at,
            _D.received_at,
            _D.due_at,
            _D.timeliness,
            _D.paused_at,
        )
        .select_from(
            table_of(Dossier).join(
                table_of(Procedure),
                _P.code == _D.procedure_code,
            )
        )
        .where(*conditions)
        .order_by(*((_D.due_at, _D.id) if shape.by_due else (_D.id.desc(),)))
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


@lru_cache(maxsize=512)
def _direct_list(shape: _ListShape) -> Direct:
    return Direct(_list_statement(shape))


_SUMMARY_KEYS = (
    "code",
    "procedure_code",
    "procedure_name",
    "agency_code",
    "status",
    "submitted_at",
    "received_at",
    "due_at",
    "timeliness",
    "paused_at",
)


async def _list(
    session: AsyncSession | None,
    shape: _ListShape,
    params: dict[str, Any],
    cursor: str | None,
    limit: int,
    now: datetime,
) -> dict[str, Any]:
    """One query for the page (and one row more, to know whether another page follows): on the
    request's session, or without one (`Direct`) when `session` is None."""
    limit = max(1, min(limit, MAX_PAGE))
    if cursor:
        params["cursor_due"], params["cursor_id"] = decode_cursor(cursor, shape.by_due)
        shape = replace(shape, cursor=True)
    params["limit"] = limit + 1
    if session is None:
        rows = await _direct_list(shape).fetch_all(params)
    else:
        rows = [row._mapping for row in await session.execute(_list_statement(shape), params)]
    last = rows[limit - 1] if len(rows) > limit else None
    return {
        "items": [_summary_row(*(row[k] for k in _SUMMARY_KEYS), now=now) for row in rows[:limit]],
        "next_cursor": None
        if last is None
        else encode_cursor(last["due_at"] if shape.by_due else None, last["id"]),
    }


async def list_mine(
    session: AsyncSession, citizen: Account, cursor: str | None, limit: int, language: Language
) -> dict[str, Any]:
    shape = _ListShape(citizen=True, english=language != "vi")
    now = clock.now()
    return await _list(session, shape, {"citizen_id": citizen.id, "now": now}, cursor, limit, now)


@dataclass
class StaffFilters:
    status: list[str] | None = None
    procedure_code: str | None = None
    assignee_id: uuid.UUID | None = None
    agency_code: str | None = None
    overdue: bool | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None


def _local_midnight(day: date) -> datetime:
    return clock.as_utc(datetime.combine(day, datetime.min.time(), tzinfo=clock.LOCAL_TZ))


class StaffScope(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def ward_code(self) -> str | None: ...


async def staff_list(
    staff: StaffScope,
    filters: StaffFilters,
    cursor: str | None,
    limit: int,
    language: Language,
) -> dict[str, Any]:
    """The staff queue, on its own connection (`Direct`): one statement, no session, no
    transaction; the caller was checked the same way (`DirectStaff`)."""
    f, now = filters, clock.now()
    statuses = list(dict.fromkeys(f.status or []))
    shape = _ListShape(
        ward=staff.role != Role.CITY_ADMIN,
        agency=bool(f.agency_code),
        statuses=len(statuses),
        procedure=bool(f.procedure_code),
        assignee=bool(f.assignee_id),
        overdue=f.overdue,
        submitted_from=bool(f.submitted_from),
        submitted_to=bool(f.submitted_to),
        english=language != "vi",
    )
    params: dict[str, Any] = {
        "ward": staff.ward_code,
        "agency": f.agency_code,
        **{f"status_{n}": status for n, status in enumerate(statuses)},
        "procedure_code": f.procedure_code,
        "assignee_id": f.assignee_id,
        "now": now,
        "submitted_from": f.submitted_from and _local_midnight(f.submitted_from),
        "submitted_to": f.submitted_to and _local_midnight(f.submitted_to + timedelta(days=1)),
    }
    return await _list(None, shape, params, cursor, limit, now)


async def staff_read(
    session: AsyncSession, staff: Account, code: str, language: Language, ctx: AuditContext
) -> dict[str, Any]:
    dossier = await for_staff(session, staff, code)
    await audit.record(
        session,
        ctx,
        "dossiers.staff_read",
        subject_id=dossier.citizen_id,
        resource=f"dossier:{dossier.code}",
    )
    return await view(session, dossier, language, staff=True)


# ---------------------------------------------------------------- the workflow


def _require(transition: Transition, body: TransitionIn) -> None:
    missing = [name for name in transition.requires if not getattr(body, name, None)]
    if missing:
        raise AppError(
            errors.TRANSITION_INCOMPLETE,
            params={"action": transition.action},
            extra={
                "errors": [
                    {"field": f"body.{m}", "code": "missing", "message": f"{m} is required"}
                    for m in missing
                ]
            },
        )


def _guard(dossier: Dossier, action: str, actor: Actor) -> Transition:
    if not is_allowed(action, dossier.status, actor):
        raise AppError(
            errors.INVALID_TRANSITION,
            params={"action": action, "status": dossier.status},
            extra={
                "dossier_status": dossier.status,
                "allowed_actions": allowed_actions(dossier.status, actor),
            },
        )
    return TRANSITIONS[action]


def _start_clock(dossier: Dossier, procedure: Procedure, now: datetime) -> date:
    """Set the appointment and legal deadline; returns the day the count starts from."""
    calendar = get_calendar()
    start = calendar.counting_start(now)
    dossier.received_at = now
    dossier.due_at = dossier.legal_due_at = calendar.close_of(
        calendar.add_workdays(start, procedure.processing_days)
    )
    return start


def _resume_clock(dossier: Dossier, now: datetime) -> int:
    """Move both deadlines by the working days spent waiting for the citizen."""
    if dossier.paused_at is None:
        return 0
    calendar = get_calendar()
    shift = calendar.workdays_between(local_date(dossier.paused_at), local_date(now))
    if shift and dossier.due_at and dossier.legal_due_at:
        dossier.due_at = calendar.close_of(calendar.add_workdays(local_date(dossier.due_at), shift))
        dossier.legal_due_at = calendar.close_of(
            calendar.add_workdays(local_date(dossier.legal_due_at), shift)
        )
    dossier.paused_workdays += shift
    dossier.paused_at = dossier.supplement_due_at = None
    return shift


def _resolve(dossier: Dossier, now: datetime) -> None:
    """Judge timeliness on the legal deadline (an extension does not make a dossier on time)."""
    calendar = get_calendar()
    dossier.resolved_at = now
    assert dossier.received_at is not None and dossier.legal_due_at is not None
    done, due = local_date(now), local_date(dossier.legal_due_at)
    dossier.timeliness = "early" if done < due else "on_time" if done == due else "late"
    used = calendar.workdays_between(calendar.counting_start(dossier.received_at), done)
    dossier.processing_days = max(0, used - dossier.paused_workdays)


def _supplement_deadline(requested_at: datetime) -> datetime:
    """Close of business of the N-th working day after the request (`DOSSIER_SUPPLEMENT_WAIT_
    WORKDAYS`); fixed when asked, so the citizen is told one date that a later change of the
    setting does not move."""
    calendar = get_calendar()
    days = get_dossier_settings().supplement_wait_workdays
    return calendar.close_of(calendar.add_workdays(local_date(requested_at), days))


async def _assignee(session: AsyncSession, dossier: Dossier, assignee_id: uuid.UUID) -> Account:
    user = await identity.get_active_user(session, assignee_id)
    if user is None or not staff_sees(user, dossier):
        raise AppError(errors.ASSIGNEE_INVALID)
    return user


async def transition(
    session: AsyncSession, staff: Account, code: str, body: TransitionIn, ctx: AuditContext
) -> Dossier:
    dossier = await for_staff(session, staff, code, lock=True)
    step = _guard(dossier, body.action, Actor.STAFF)
    _require(step, body)
    procedure = await get_procedure(session, dossier.procedure_code)
    now, before = clock.now(), dossier.status
    data: dict[str, Any] = {}
    match body.action:
        case "receive":
            counted_from = _start_clock(dossier, procedure, now)
            dossier.received_by_id = staff.id
            assert dossier.due_at is not None  # set by _start_clock
            data = {
                "receipt_no": dossier.code,
                "appointment_at": dossier.due_at.isoformat(),
                "counted_from": counted_from.isoformat(),
            }
        case "reject_intake" | "stop" | "reject":
            dossier.outcome_reasons = list(body.reasons or [])
            dossier.outcome_note = body.note
            if body.action == "reject":
                _resolve(dossier, now)
            dossier.closed_at, dossier.paused_at, dossier.supplement_due_at = now, None, None
            data = {"reasons": dossier.outcome_reasons}
        case "assign":
            assignee = await _assignee(session, dossier, body.assignee_id)  # type: ignore[arg-type]
            dossier.assignee_id = assignee.id
            data = {"assignee_id": str(assignee.id)}
        case "request_supplement":
            if dossier.supplement_requests >= 1:
                raise AppError(errors.SUPPLEMENT_ALREADY_REQUESTED)
            dossier.supplement_requests += 1
            dossier.paused_at = now
            dossier.supplement_due_at = _supplement_deadline(now)
            dossier.supplement_note = body.note
            dossier.supplement_documents = list(body.requested_documents or [])
            data = {
                "requested_documents": dossier.supplement_documents,
                "supplement_due_at": dossier.supplement_due_at.isoformat(),
            }
        case "approve":
            _resolve(dossier, now)
            dossier.outcome_note = body.note
            data = {"timeliness": dossier.timeliness}
        case "return_result":
            owned = await media.get_owned(session, [body.result_media_id], staff.id)  # type: ignore[list-item]
            if body.result_media_id not in owned:
                raise AppError(errors.RESULT_DOCUMENT_INVALID)
            dossier.result_media_id = body.result_media_id
            dossier.returned_at = dossier.closed_at = now
            await _attach(
                session,
                dossier,
                [AttachmentIn(document_code="ket_qua", media_id=body.result_media_id)],
                "result",
                staff.id,
            )
            data = {"result_media_id": str(body.result_media_id)}
        case "extend":
            new_day: date = body.new_due_date  # type: ignore[assignment]
            assert dossier.due_at is not None
            if new_day <= local_date(dossier.due_at) or not get_calendar().is_workday(new_day):
                raise AppError(errors.DUE_DATE_INVALID)
            old_due = dossier.due_at
            dossier.due_at = get_calendar().close_of(new_day)
            dossier.extensions += 1
            data = {
                "apology": body.apology,
                "previous_due_at": old_due.isoformat(),
                "due_at": dossier.due_at.isoformat(),
            }
    if step.target is not None:
        dossier.status = step.target
    dossier.updated_at = now
    await session.flush()
    await _record(session, dossier, step, before, staff, note=body.note, data=data)
    await audit.record(
        session,
        ctx,
        f"dossiers.{body.action}",
        subject_id=dossier.citizen_id,
        resource=f"dossier:{dossier.code}",
        reason=body.note,
    )
    return dossier


async def supplement(
    session: AsyncSession, citizen: Account, code: str, body: SupplementIn
) -> Dossier:
    dossier = await for_citizen(session, citizen, code, lock=True)
    step = _guard(dossier, "supplement", Actor.CITIZEN)
    if dossier.supplement_due_at is not None and dossier.supplement_due_at < clock.now():
        # Too late, even if the periodic stop has not run yet: the outcome must not depend on
        # when the job happens to run.
        raise AppError(
            errors.SUPPLEMENT_PERIOD_EXPIRED,
            params={
                "due": f"{dossier.supplement_due_at.astimezone(clock.LOCAL_TZ):%H:%M %d/%m/%Y}"
            },
        )
    if body.form is None and not body.documents and not body.note:
        raise AppError(errors.SUPPLEMENT_EMPTY)
    procedure = await get_procedure(session, dossier.procedure_code)
    if body.form is not None:
        validate_form(procedure.form_schema, body.form)
        dossier.form = form_pii.seal(procedure.form_schema, body.form, dossier.id)
    await check_documents(session, procedure, citizen.id, body.documents, require_all=False)
    await _attach(session, dossier, body.documents, "supplement", citizen.id)
    now, before = clock.now(), dossier.status
    shift = _resume_clock(dossier, now)
    dossier.status = step.target  # type: ignore[assignment]
    dossier.updated_at = now
    await session.flush()
    await _record(
        session,
        dossier,
        step,
        before,
        citizen,
        note=body.note,
        data={
            "paused_workdays": shift,
            "due_at": dossier.due_at.isoformat() if dossier.due_at else None,
        },
    )
    return dossier


async def withdraw(
    session: AsyncSession, citizen: Account, code: str, reason: str | None
) -> Dossier:
    dossier = await for_citizen(session, citizen, code, lock=True)
    step = _guard(dossier, "withdraw", Actor.CITIZEN)
    before, now = dossier.status, clock.now()
    dossier.status, dossier.closed_at, dossier.updated_at = Status.WITHDRAWN, now, now
    dossier.paused_at = dossier.supplement_due_at = None
    await session.flush()
    await _record(session, dossier, step, before, citizen, note=reason, data={})
    return dossier


async def rate(
    session: AsyncSession, citizen: Account, code: str, score: int, comment: str | None
) -> Dossier:
    dossier = await for_citizen(session, citizen, code, lock=True)
    step = _guard(dossier, "rate", Actor.CITIZEN)
    if dossier.rating is not None:
        raise AppError(errors.ALREADY_RATED)
    dossier.rating, dossier.rating_comment = score, comment
    dossier.rated_at = dossier.updated_at = clock.now()
    await session.flush()
    await _record(
        session, dossier, step, dossier.status, citizen, note=comment, data={"score": score}
    )
    return dossier


async def stop_unsupplemented(session: AsyncSession, *, batch: int = 500) -> int:
    """Stop processing of dossiers whose supplement period ran out (the system acts; the
    citizen is told through `dossier.status_changed`). Idempotent: a stopped dossier no longer
    matches. Rows are locked and skipped when locked (PostgreSQL), so two workers never stop
    one dossier twice; more than `batch` waiting are taken by the next run."""
    now = clock.now()
    query = (
        sa.select(Dossier)
        .where(
            col(Dossier.status) == Status.SUPPLEMENT_REQUESTED, col(Dossier.supplement_due_at) < now
        )
        .order_by(col(Dossier.supplement_due_at))
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    step = TRANSITIONS["supplement_expired"]
    assert step.target is not None
    stopped = 0
    for dossier in (await session.execute(query)).scalars().all():
        due = dossier.supplement_due_at
        assert due is not None
        dossier.status, dossier.closed_at, dossier.updated_at = step.target, now, now
        dossier.paused_at = dossier.supplement_due_at = None
        dossier.outcome_reasons = ["supplement_not_provided"]
        await session.flush()
        await _record(
            session,
            dossier,
            step,
            Status.SUPPLEMENT_REQUESTED,
            None,
            note=None,
            data={"supplement_due_at": due.isoformat()},
        )
        stopped += 1
    return stopped


# ---------------------------------------------------------------- public look-up


async def public_lookup(
    session: AsyncSession, code: str, phone_last4: str, ip: str | None
) -> dict[str, Any]:
    """Status by code and the last 4 phone digits, rate limited per IP and per code so the
    10,000 possible digits cannot be tried. A miss looks the same whatever was wrong."""
    settings = get_dossier_settings()
    await ratelimit.hit(
        session,
        f"dossier_lookup:ip:{ip}",
        limit=settings.public_lookup_per_ip_per_minute,
        window_seconds=60,
    )
    await ratelimit.hit(
        session,
        f"dossier_lookup:code:{code[:40]}",
        limit=settings.public_lookup_per_code_per_hour,
        window_seconds=3600,
    )
    dossier = await _load(session, code)
    if (
        dossier is None
        or not dossier.applicant_phone_last4
        or dossier.applicant_phone_last4 != phone_last4
    ):
        # commit=True: the counted attempt must survive the failed answer.
        raise AppError(errors.DOSSIER_NOT_FOUND, commit=True)
    procedure = await session.get(Procedure, dossier.procedure_code)
    assert procedure is not None
    return {
        "code": dossier.code,
        "procedure_name": procedure.name,
        "procedure_name_en": procedure.name_en,
        "agency_code": dossier.agency_code,
        "status": dossier.status,
        "submitted_at": dossier.submitted_at,
        "received_at": dossier.received_at,
        "due_at": dossier.due_at,
        "timeliness": dossier.timeliness,
    }


# ---------------------------------------------------------------- statistics


async def stats(
    session: AsyncSession,
    staff: Account,
    *,
    agency_code: str | None,
    period_from: str | None,
    period_to: str | None,
) -> list[dict[str, Any]]:
    on_time = sa.func.sum(sa.case((col(Dossier.timeliness).in_(["early", "on_time"]), 1), else_=0))
    query = (
        sa.select(
            col(Dossier.agency_code),
            col(Dossier.period),
            sa.func.count().label("submitted"),
            sa.func.count(col(Dossier.received_at)),
            sa.func.count(col(Dossier.resolved_at)),
            on_time,
            sa.func.avg(col(Dossier.processing_days)),
            sa.func.count(col(Dossier.rating)),
            sa.func.avg(col(Dossier.rating)),
        )
        .group_by(col(Dossier.agency_code), col(Dossier.period))
        .order_by(col(Dossier.period), col(Dossier.agency_code))
    )
    if staff.role != Role.CITY_ADMIN:
        query = query.where(col(Dossier.agency_code) == staff.ward_code)
    if agency_code:
        query = query.where(col(Dossier.agency_code) == agency_code)
    if period_from:
        query = query.where(col(Dossier.period) >= period_from)
    if period_to:
        query = query.where(col(Dossier.period) <= period_to)
    out = []
    for (
        agency,
        period,
        submitted,
        received,
        resolved,
        timely,
        avg_days,
        ratings,
        avg_rating,
    ) in await session.execute(query):
        timely = int(timely or 0)
        out.append(
            {
                "agency_code": agency,
                "period": period,
                "submitted": submitted,
                "received": received,
                "resolved": resolved,
                "on_time": timely,
                "on_time_rate": round(timely / resolved, 4) if resolved else None,
                "average_processing_days": None if avg_days is None else round(float(avg_days), 2),
                "ratings": ratings,
                "satisfaction": None if avg_rating is None else round(float(avg_rating), 2),
            }
        )
    return out


# ---------------------------------------------------------------- personal data


async def export_dossiers(session: AsyncSession, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (
        (
            await session.execute(
                sa.select(Dossier)
                .where(col(Dossier.citizen_id) == user_id)
                .order_by(col(Dossier.id))
            )
        )
        .scalars()
        .all()
    )
    out = []
    for dossier in rows:
        data = await view(session, dossier, "vi", staff=False)
        out.append(json.loads(json.dumps(data, default=str)))
    return out


async def erase_dossiers(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    count = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(Dossier)
            .where(col(Dossier.citizen_id) == user_id)
        )
    ).scalar_one()
    if not count:
        return []
    # Unfinished dossiers are withdrawn: nobody is left to receive the result.
    await session.execute(
        sa.update(Dossier)
        .where(
            col(Dossier.citizen_id) == user_id,
            col(Dossier.status).in_([s.value for s in Status if s in _CANCELLABLE]),
        )
        .values(
            status=Status.WITHDRAWN, closed_at=clock.now(), paused_at=None, supplement_due_at=None
        )
    )
    return [
        Retained(
            data=f"{count} public-service dossiers with their forms, documents and timeline",
            reason_vi="Hồ sơ thủ tục hành chính là tài liệu lưu trữ theo Luật Lưu trữ.",
            reason_en="Administrative-procedure dossiers are archival records under the Law on "
            "Archives.",
        )
    ]


_CANCELLABLE = TRANSITIONS["withdraw"].sources


def _register_personal_data() -> None:
    from app.core import personal_data

    personal_data.register("dossiers", exporter=export_dossiers, eraser=erase_dossiers)


_register_personal_data()
