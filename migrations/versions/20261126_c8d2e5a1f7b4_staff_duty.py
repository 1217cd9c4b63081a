"""staff_duty: ward staff on duty, who get the ward's urgent notices (camera alerts)

Revision ID: c8d2e5a1f7b4
Revises: b4f1c7d2e9a3
Create Date: 2026-11-26 11:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db

revision: str = 'c8d2e5a1f7b4'
down_revision: Union[str, Sequence[str], None] = 'b4f1c7d2e9a3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('staff_duty',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('ward_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('started_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('until', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    with op.batch_alter_table('staff_duty', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_duty_ward_code'), ['ward_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff_duty', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_duty_ward_code'))
    op.drop_table('staff_duty')
