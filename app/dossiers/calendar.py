"""Vietnamese working days: Monday to Friday, less public holidays (`holidays` VN), less extra
days off, plus make-up Saturdays from the configured day swaps."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays

from app.core import clock
from app.dossiers.config import DossierSettings, get_dossier_settings


class WorkCalendar:
    def __init__(self, settings: DossierSettings) -> None:
        self.settings = settings
        self.public_holidays = holidays.country_holidays("VN")  # expands years on demand
        self.days_off = {s.off for s in settings.workday_swaps} | set(settings.extra_days_off)
        self.makeup_days = {s.work for s in settings.workday_swaps}

    def is_workday(self, day: date) -> bool:
        if day in self.makeup_days:
            return True
        if day.weekday() >= 5 or day in self.days_off:
            return False
        return day not in self.public_holidays

    def add_workdays(self, start: date, count: int) -> date:
        """The `count`-th working day after `start` (start itself never counts)."""
        day = start
        while count > 0:
            day += timedelta(days=1)
            if self.is_workday(day):
                count -= 1
        return day

    def counting_start(self, received_at: datetime) -> date:
        """The day a receipt counts from (day 0; day 1 is the next working day): the day itself
        when it is a working day and the receipt came no later than the cut-off
        (`DOSSIER_RECEIPT_CUTOFF`, 15:00 local); otherwise the next working day, as if received
        then. So a dossier received at 16:00 gets one working day more than one received at
        14:00, as the citizen was told at the counter."""
        local = clock.as_utc(received_at).astimezone(clock.LOCAL_TZ)
        day = local.date()
        if self.is_workday(day) and local.time() <= self.settings.receipt_cutoff:
            return day
        return self.add_workdays(day, 1)

    def workdays_between(self, after: date, until: date) -> int:
        """Working days d with after < d <= until (0 if until <= after)."""
        total, day = 0, after
        while day < until:
            day += timedelta(days=1)
            if self.is_workday(day):
                total += 1
        return total

    def close_of(self, day: date) -> datetime:
        """The deadline instant of a day: close of business, local time, as UTC."""
        local = datetime.combine(day, self.settings.close_of_business, tzinfo=clock.LOCAL_TZ)
        return clock.as_utc(local)


def local_date(moment: datetime) -> date:
    return clock.as_utc(moment).astimezone(clock.LOCAL_TZ).date()


@lru_cache
def get_calendar() -> WorkCalendar:
    return WorkCalendar(get_dossier_settings())
