"""camera_snapshots: pictures stored out of line without compression (PostgreSQL)

JPEG does not compress: PostgreSQL's default storage for bytea (EXTENDED) ran pglz over every
100 KB snapshot and kept the result only when it was smaller, which it never was. That attempt
was most of the database's CPU in an alert's acknowledgement (measured with
scripts/bench/camera.py: 402 -> 731 acknowledgements/s on PostgreSQL). EXTERNAL keeps the
out-of-line storage and skips the compression. SQLite has no such setting: nothing to do there.

Revision ID: 7b3e9d2a4c10
Revises: 5e1f0a7c3b21
Create Date: 2026-11-26 03:45:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '7b3e9d2a4c10'
down_revision: Union[str, Sequence[str], None] = '5e1f0a7c3b21'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE camera_snapshots ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE camera_snapshots ALTER COLUMN content SET STORAGE EXTENDED")
