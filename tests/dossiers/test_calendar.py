"""Working days: weekends, Vietnamese public holidays (Tết 2027: 4–10 Feb), configured swaps."""

from __future__ import annotations

from datetime import date, datetime

from app.core import clock
from app.dossiers.calendar import WorkCalendar, local_date
from app.dossiers.config import DossierSettings, WorkdaySwap
from app.dossiers.text import fold


def calendar(**settings: object) -> WorkCalendar:
    return WorkCalendar(DossierSettings(**settings))  # type: ignore[arg-type]


def test_tet_2027_is_skipped() -> None:
    cal = calendar()
    for day in range(4, 11):  # Thu 4 Feb (29 Tết) .. Wed 10 Feb
        assert not cal.is_workday(date(2027, 2, day)), day
    assert cal.is_workday(date(2027, 2, 3))
    assert cal.is_workday(date(2027, 2, 11))
    # 3 working days from Wed 3 Feb: Thu 11, Fri 12, Mon 15.
    assert cal.add_workdays(date(2027, 2, 3), 3) == date(2027, 2, 15)
    assert cal.workdays_between(date(2027, 2, 3), date(2027, 2, 11)) == 1


def test_weekends_and_other_holidays() -> None:
    cal = calendar()
    assert cal.add_workdays(date(2027, 4, 29), 1) == date(2027, 5, 4)  # 30/4, 1/5 (+3/5)
    assert cal.add_workdays(date(2026, 11, 27), 1) == date(2026, 11, 30)  # Fri -> Mon
    assert cal.workdays_between(date(2026, 11, 30), date(2026, 11, 30)) == 0


def test_configured_day_swap_moves_a_working_day_to_a_saturday() -> None:
    cal = calendar(
        workday_swaps=[WorkdaySwap(off=date(2027, 2, 11), work=date(2027, 2, 20))],
        extra_days_off=[date(2027, 2, 12)],
    )
    assert not cal.is_workday(date(2027, 2, 11))
    assert not cal.is_workday(date(2027, 2, 12))
    assert cal.is_workday(date(2027, 2, 20))  # a make-up Saturday
    assert cal.add_workdays(date(2027, 2, 3), 3) == date(2027, 2, 17)  # Mon 15, Tue 16, Wed 17
    assert cal.add_workdays(date(2027, 2, 19), 1) == date(2027, 2, 20)


def test_swaps_are_read_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOSSIER_WORKDAY_SWAPS", '[{"off": "2027-02-11", "work": "2027-02-20"}]')
    cal = WorkCalendar(DossierSettings())
    assert cal.is_workday(date(2027, 2, 20)) and not cal.is_workday(date(2027, 2, 11))


def test_deadline_is_close_of_business_local_time() -> None:
    due = calendar().close_of(date(2027, 2, 15))
    assert due == datetime.fromisoformat("2027-02-15T10:00:00+00:00")
    assert local_date(datetime.fromisoformat("2027-02-14T18:30:00+00:00")) == date(2027, 2, 15)


def test_folding_ignores_diacritics_and_case() -> None:
    assert fold("Đăng ký  KHAI SINH") == "dang ky khai sinh"
    assert fold("Chứng thực bản sao") == "chung thuc ban sao"
    assert fold("Xác nhận tình trạng hôn nhân") == "xac nhan tinh trang hon nhan"


def at(local: str) -> datetime:
    """A local (Asia/Ho_Chi_Minh) wall time as the aware instant the service stores."""
    return datetime.fromisoformat(local).replace(tzinfo=clock.LOCAL_TZ)


def test_a_receipt_after_15_00_counts_from_the_next_working_day() -> None:
    cal = calendar()
    # Monday 1 March 2027: up to 15:00 the day itself is day 0, later the Tuesday is.
    assert cal.counting_start(at("2027-03-01T08:00")) == date(2027, 3, 1)
    assert cal.counting_start(at("2027-03-01T15:00")) == date(2027, 3, 1)
    assert cal.counting_start(at("2027-03-01T15:01")) == date(2027, 3, 2)
    assert cal.counting_start(at("2027-03-01T23:59")) == date(2027, 3, 2)
    # 15:30 local is 08:30 UTC: the cut-off is judged on the local clock, not on UTC's.
    assert cal.counting_start(datetime.fromisoformat("2027-03-01T08:30:00+00:00")) == date(
        2027, 3, 2
    )


def test_a_late_friday_or_weekend_receipt_counts_from_monday() -> None:
    cal = calendar()
    assert cal.counting_start(at("2027-03-05T16:00")) == date(2027, 3, 8)  # Fri 16:00
    assert cal.counting_start(at("2027-03-06T09:00")) == date(2027, 3, 8)  # Saturday
    assert cal.counting_start(at("2027-03-07T09:00")) == date(2027, 3, 8)  # Sunday
    # One working day: received Friday 14:00 it is due Monday, at 16:00 Tuesday.
    assert cal.add_workdays(cal.counting_start(at("2027-03-05T14:00")), 1) == date(2027, 3, 8)
    assert cal.add_workdays(cal.counting_start(at("2027-03-05T16:00")), 1) == date(2027, 3, 9)


def test_a_late_receipt_on_the_eve_of_tet_counts_from_after_tet() -> None:
    cal = calendar()
    # Wed 3 Feb 2027 is the last working day before Tết (Thu 4 – Wed 10 Feb).
    assert cal.counting_start(at("2027-02-03T10:00")) == date(2027, 2, 3)
    assert cal.counting_start(at("2027-02-03T16:30")) == date(2027, 2, 11)
    assert cal.counting_start(at("2027-02-06T10:00")) == date(2027, 2, 11)  # during Tết
    assert cal.add_workdays(cal.counting_start(at("2027-02-03T16:30")), 1) == date(2027, 2, 12)


def test_a_late_receipt_before_a_swapped_day_counts_from_the_make_up_saturday() -> None:
    cal = calendar(workday_swaps=[WorkdaySwap(off=date(2027, 3, 5), work=date(2027, 3, 13))])
    # Thu 4 Mar, late: Fri 5 is off by the swap, so Monday 8 is the next working day.
    assert cal.counting_start(at("2027-03-04T16:00")) == date(2027, 3, 8)
    # Fri 12 Mar, late: the make-up Saturday 13 is a working day.
    assert cal.counting_start(at("2027-03-12T16:00")) == date(2027, 3, 13)
    # On the make-up Saturday itself, before the cut-off, the Saturday counts.
    assert cal.counting_start(at("2027-03-13T10:00")) == date(2027, 3, 13)
    assert cal.add_workdays(cal.counting_start(at("2027-03-13T10:00")), 1) == date(2027, 3, 15)


def test_the_cut_off_is_a_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOSSIER_RECEIPT_CUTOFF", "16:30")
    cal = WorkCalendar(DossierSettings())
    assert cal.counting_start(at("2027-03-01T16:00")) == date(2027, 3, 1)
    assert cal.counting_start(at("2027-03-01T16:31")) == date(2027, 3, 2)
