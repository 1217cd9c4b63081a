"""Dossier settings (env: DOSSIER_WORKDAY_SWAPS, DOSSIER_EXTRA_DAYS_OFF, ...)."""

from __future__ import annotations

from datetime import date, time
from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkdaySwap(BaseModel):
    """A government day swap: `off` (a weekday) is a day off, `work` (a Saturday) is worked."""

    off: date
    work: date


class DossierSettings(BaseSettings):
    """Dossiers: the working-day calendar of deadlines and the public status look-up's limits."""

    model_config = SettingsConfigDict(
        env_file=".env", env_prefix="DOSSIER_", extra="ignore", case_sensitive=False
    )

    # JSON, e.g. [{"off": "2025-05-02", "work": "2025-04-26"}]: each year's swaps decided by the
    # Prime Minister, which the `holidays` package does not model.
    workday_swaps: list[WorkdaySwap] = []
    # Extra days off decided locally or late (JSON list of dates).
    extra_days_off: list[date] = []
    # A deadline falls at this local time of its last working day.
    close_of_business: time = time(17, 0)
    # A dossier received after this local time (or on a day off) counts from the next working
    # day: the rule of the same-day civil-status and certification procedures, applied to all.
    receipt_cutoff: time = time(15, 0)
    # Working days the citizen has to provide a requested supplement; past its close of business
    # a periodic job stops processing (status `stopped`). To be confirmed by the city: the
    # rules at hand name no general period.
    supplement_wait_workdays: int = Field(default=15, ge=1)
    # Public status look-ups (dossier code + last 4 phone digits) one address may make a minute.
    public_lookup_per_ip_per_minute: int = 20
    # Public status look-ups of one dossier code an hour, from any address: the 10,000 possible
    # digits cannot be tried.
    public_lookup_per_code_per_hour: int = 10


@lru_cache
def get_dossier_settings() -> DossierSettings:
    return DossierSettings()
