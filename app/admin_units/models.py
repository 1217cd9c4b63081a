"""Two-tier local government (since 2025-07-01): province -> ward/commune."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class AdminUnit(SQLModel, table=True):
    __tablename__ = "admin_units"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    level: str = Field(max_length=16)  # province | ward | commune
    parent_code: str | None = Field(default=None, foreign_key="admin_units.code", index=True)
