"""Working days: weekends, Vietnamese public holidays (Tết 2027: 4–10 Feb), configured swaps."""

from __future__ import annotations

from datetime import date, datetime

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
    cal = calendar(workday_swaps=[WorkdaySwap(off=date(2027, 2, 11), work=date(2027, 2, 20))],
                   extra_days_off=[date(2027, 2, 12)])
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
