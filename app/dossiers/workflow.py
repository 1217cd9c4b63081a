"""The dossier state machine: the single source of which action is allowed in which state, who
may take it, where it leads and what it needs. Service and router both read this table.

Follows Decree 118/2025/ND-CP and Circular 03/2025/TT-VPCP: an online dossier waits for intake;
staff receive it (issuing the receipt and appointment date) or refuse it with reasons; processing
may ask once for a supplement (the clock pauses), be extended with an apology, or be stopped; the
result (approval or reasoned refusal) is returned to the citizen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    SUBMITTED = "submitted"  # online, waiting for intake
    RECEIVED = "received"  # valid receipt: the clock runs
    IN_PROGRESS = "in_progress"  # assigned to an officer
    SUPPLEMENT_REQUESTED = "supplement_requested"  # clock paused
    APPROVED = "approved"  # result ready, to be returned
    REJECTED = "rejected"  # refused with reasons (terminal)
    RETURNED = "returned"  # result handed back (terminal; can be rated)
    INTAKE_REJECTED = "intake_rejected"  # refused at intake (terminal)
    WITHDRAWN = "withdrawn"  # by the citizen (terminal)
    STOPPED = "stopped"  # processing stopped (terminal)


class Actor(StrEnum):
    STAFF = "staff"
    CITIZEN = "citizen"
    SYSTEM = "system"


S = Status
OPEN = frozenset({S.RECEIVED, S.IN_PROGRESS})  # the clock runs
ACTIVE = frozenset({S.SUBMITTED, S.RECEIVED, S.IN_PROGRESS, S.SUPPLEMENT_REQUESTED, S.APPROVED})
TERMINAL = frozenset(set(Status) - ACTIVE)


@dataclass(frozen=True)
class Transition:
    action: str
    actor: Actor
    sources: frozenset[Status]
    # None: the status does not change (assign while in progress, extend).
    target: Status | None
    requires: tuple[str, ...] = ()
    vi: str = ""
    en: str = ""


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition(
            "submit",
            Actor.CITIZEN,
            frozenset(),
            S.SUBMITTED,
            vi="Nộp hồ sơ trực tuyến",
            en="Submitted online",
        ),
        Transition(
            "receive",
            Actor.STAFF,
            frozenset({S.SUBMITTED}),
            S.RECEIVED,
            vi="Tiếp nhận hồ sơ, hẹn trả kết quả",
            en="Received; appointment issued",
        ),
        Transition(
            "reject_intake",
            Actor.STAFF,
            frozenset({S.SUBMITTED}),
            S.INTAKE_REJECTED,
            requires=("reasons",),
            vi="Từ chối tiếp nhận",
            en="Refused at intake",
        ),
        Transition(
            "assign",
            Actor.STAFF,
            frozenset({S.RECEIVED, S.IN_PROGRESS}),
            S.IN_PROGRESS,
            requires=("assignee_id",),
            vi="Phân công xử lý",
            en="Assigned",
        ),
        Transition(
            "request_supplement",
            Actor.STAFF,
            frozenset({S.RECEIVED, S.IN_PROGRESS}),
            S.SUPPLEMENT_REQUESTED,
            requires=("note",),
            vi="Yêu cầu bổ sung hồ sơ",
            en="Supplement requested",
        ),
        Transition(
            "supplement",
            Actor.CITIZEN,
            frozenset({S.SUPPLEMENT_REQUESTED}),
            S.IN_PROGRESS,
            vi="Công dân bổ sung hồ sơ",
            en="Supplement provided",
        ),
        Transition(
            "approve",
            Actor.STAFF,
            frozenset({S.RECEIVED, S.IN_PROGRESS}),
            S.APPROVED,
            vi="Phê duyệt kết quả",
            en="Approved",
        ),
        Transition(
            "reject",
            Actor.STAFF,
            frozenset({S.RECEIVED, S.IN_PROGRESS}),
            S.REJECTED,
            requires=("reasons",),
            vi="Từ chối giải quyết",
            en="Rejected with reasons",
        ),
        Transition(
            "return_result",
            Actor.STAFF,
            frozenset({S.APPROVED}),
            S.RETURNED,
            requires=("result_media_id",),
            vi="Trả kết quả",
            en="Result returned",
        ),
        Transition(
            "extend",
            Actor.STAFF,
            frozenset({S.RECEIVED, S.IN_PROGRESS}),
            None,
            requires=("apology", "new_due_date"),
            vi="Gia hạn, gửi văn bản xin lỗi",
            en="Extended with an apology",
        ),
        Transition(
            "stop",
            Actor.STAFF,
            frozenset({S.RECEIVED, S.IN_PROGRESS, S.SUPPLEMENT_REQUESTED}),
            S.STOPPED,
            requires=("reasons",),
            vi="Dừng xử lý",
            en="Processing stopped",
        ),
        # The citizen let the supplement period run out: a periodic job stops processing.
        Transition(
            "supplement_expired",
            Actor.SYSTEM,
            frozenset({S.SUPPLEMENT_REQUESTED}),
            S.STOPPED,
            vi="Dừng xử lý do quá hạn bổ sung hồ sơ",
            en="Processing stopped: the supplement was not provided in time",
        ),
        Transition(
            "withdraw",
            Actor.CITIZEN,
            frozenset({S.SUBMITTED, S.RECEIVED, S.IN_PROGRESS, S.SUPPLEMENT_REQUESTED}),
            S.WITHDRAWN,
            vi="Công dân rút hồ sơ",
            en="Withdrawn by the citizen",
        ),
        Transition(
            "rate",
            Actor.CITIZEN,
            frozenset({S.RETURNED}),
            None,
            vi="Đánh giá mức độ hài lòng",
            en="Rated",
        ),
    )
}

STAFF_ACTIONS = tuple(a for a, t in TRANSITIONS.items() if t.actor == Actor.STAFF)


def allowed_actions(status: Status | str, actor: Actor) -> list[str]:
    return [a for a, t in TRANSITIONS.items() if t.actor == actor and status in t.sources]


def is_allowed(action: str, status: Status | str, actor: Actor) -> bool:
    transition = TRANSITIONS.get(action)
    return transition is not None and transition.actor == actor and status in transition.sources
