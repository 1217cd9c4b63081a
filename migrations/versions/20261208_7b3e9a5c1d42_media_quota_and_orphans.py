"""media_quota_and_orphans: one storage counter per account for every way in; attached_at
marks files a record took (uploads never attached are purged)

Revision ID: 7b3e9a5c1d42
Revises: 3f6a1d9c7e25
Create Date: 2026-12-08 05:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import app.core.db

revision: str = '7b3e9a5c1d42'
down_revision: Union[str, Sequence[str], None] = '3f6a1d9c7e25'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('media_quota_usage',
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('used_bytes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('owner_id')
    )
    with op.batch_alter_table('media_objects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attached_at', app.core.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_media_objects_unattached', ['created_at'], unique=False,
                              sqlite_where=sa.text('attached_at IS NULL'),
                              postgresql_where=sa.text('attached_at IS NULL'))
    # Files a record already took are attached (as of their upload): never purged.
    op.execute(
        "UPDATE media_objects SET attached_at = created_at WHERE legal_hold"
        " OR owner_id IS NULL"
        " OR id IN (SELECT media_id FROM incident_media)"
        " OR id IN (SELECT media_id FROM dossier_documents)"
        " OR id IN (SELECT result_media_id FROM dossiers WHERE result_media_id IS NOT NULL)"
    )
    # What each account holds now: kept files and unfinished uploads.
    op.execute(
        "INSERT INTO media_quota_usage (owner_id, used_bytes)"
        " SELECT owner_id, SUM(size) FROM ("
        "  SELECT owner_id, size_bytes AS size FROM media_objects WHERE owner_id IS NOT NULL"
        "  UNION ALL"
        "  SELECT owner_id, length AS size FROM tus_uploads WHERE completed_at IS NULL"
        " ) AS held GROUP BY owner_id"
    )


def downgrade() -> None:
    with op.batch_alter_table('media_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_media_objects_unattached',
                            sqlite_where=sa.text('attached_at IS NULL'),
                            postgresql_where=sa.text('attached_at IS NULL'))
        batch_op.drop_column('attached_at')
    op.drop_table('media_quota_usage')
