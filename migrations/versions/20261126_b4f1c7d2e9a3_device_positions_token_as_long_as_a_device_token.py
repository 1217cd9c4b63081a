"""device_positions.token: as long as a device's push token (1024, was 512)

A device registered with a token of 513 to 1024 characters (app.notifications allows 1024) could
not report its position: PostgreSQL refused the row (a 500).

Revision ID: b4f1c7d2e9a3
Revises: 9c2d4e6f8a01
Create Date: 2026-11-26 10:50:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'b4f1c7d2e9a3'
down_revision: Union[str, Sequence[str], None] = '9c2d4e6f8a01'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('device_positions', schema=None) as batch_op:
        batch_op.alter_column('token', existing_type=sqlmodel.sql.sqltypes.AutoString(length=512),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=1024), existing_nullable=False)


def downgrade() -> None:
    # Positions of tokens longer than 512 cannot be kept in the old column: they go (a device
    # reports its position again on its next report).
    op.execute(sa.text("DELETE FROM device_positions WHERE length(token) > 512"))
    with op.batch_alter_table('device_positions', schema=None) as batch_op:
        batch_op.alter_column('token', existing_type=sqlmodel.sql.sqltypes.AutoString(length=1024),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=512), existing_nullable=False)
