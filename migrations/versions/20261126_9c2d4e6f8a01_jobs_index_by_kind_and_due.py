"""jobs: index (kind, status, run_after) in place of (kind)

A worker looks, on each claim, for the newest and oldest due job of the kinds that wait out
bursts (camera alerts' processing). Through (status, run_after) that walked past every other
pending job (3 ms with 20,000 pending pushes, growing with them); through (kind, status,
run_after) it is one index probe each (0.09 ms). The index on kind alone is its prefix, so it
goes.

Revision ID: 9c2d4e6f8a01
Revises: 7b3e9d2a4c10
Create Date: 2026-11-26 08:20:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = '9c2d4e6f8a01'
down_revision: Union[str, Sequence[str], None] = '7b3e9d2a4c10'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_kind_due', ['kind', 'status', 'run_after'], unique=False)
        batch_op.drop_index(batch_op.f('ix_jobs_kind'))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_kind'), ['kind'], unique=False)
        batch_op.drop_index('ix_jobs_kind_due')
