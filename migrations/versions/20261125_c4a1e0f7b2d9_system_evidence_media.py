"""system evidence media: a media object may have no owner (a camera alert's picture), and
an alert names the media item of its picture

Revision ID: c4a1e0f7b2d9
Revises: 4c0b67f39544
Create Date: 2026-11-25 22:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c4a1e0f7b2d9'
down_revision: Union[str, Sequence[str], None] = '4c0b67f39544'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('media_objects', schema=None) as batch_op:
        batch_op.alter_column('owner_id', existing_type=sa.Uuid(), nullable=True)
    with op.batch_alter_table('camera_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence_media_id', sa.Uuid(), nullable=True))


def downgrade() -> None:
    """Downgrade schema (system evidence files first: they have no owner to keep)."""
    with op.batch_alter_table('camera_alerts', schema=None) as batch_op:
        batch_op.drop_column('evidence_media_id')
    op.execute("DELETE FROM media_objects WHERE owner_id IS NULL")
    with op.batch_alter_table('media_objects', schema=None) as batch_op:
        batch_op.alter_column('owner_id', existing_type=sa.Uuid(), nullable=False)
