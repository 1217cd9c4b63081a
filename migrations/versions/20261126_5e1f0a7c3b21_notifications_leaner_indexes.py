"""notifications: leaner indexes for announcement fan-out

Every inbox row and delivery row of a 100,000-recipient announcement pays for each index of its
table. Deliveries lose the two nothing reads (device_id; status, next_attempt_at: retries name
their rows). The inbox's (user_id, dedupe_key) uniqueness becomes a partial unique index over
the rows that have a key, and the announcement_id index becomes a unique
(announcement_id, user_id): one row per recipient of an announcement, which its reports and a
batch's check for recipients told already read by range. Announcement rows carry no dedupe key.

Revision ID: 5e1f0a7c3b21
Revises: c4a1e0f7b2d9
Create Date: 2026-11-26 00:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '5e1f0a7c3b21'
down_revision: Union[str, Sequence[str], None] = 'c4a1e0f7b2d9'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

KEYED = sa.text('dedupe_key IS NOT NULL')


def upgrade() -> None:
    op.execute(
        "UPDATE notifications SET dedupe_key = NULL "
        "WHERE announcement_id IS NOT NULL AND dedupe_key LIKE 'announcement:%'"
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint('uq_notifications_user_dedupe', type_='unique')
        batch_op.drop_index(batch_op.f('ix_notifications_announcement_id'))
        batch_op.create_index('uq_notifications_user_dedupe', ['user_id', 'dedupe_key'],
                              unique=True, postgresql_where=KEYED, sqlite_where=KEYED)
        batch_op.create_index('uq_notifications_announcement_user',
                              ['announcement_id', 'user_id'], unique=True)
    with op.batch_alter_table('push_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_push_deliveries_status_next')
        batch_op.drop_index(batch_op.f('ix_push_deliveries_device_id'))


def downgrade() -> None:
    with op.batch_alter_table('push_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_deliveries_device_id'), ['device_id'],
                              unique=False)
        batch_op.create_index('ix_push_deliveries_status_next', ['status', 'next_attempt_at'],
                              unique=False)
    op.execute(
        "UPDATE notifications SET dedupe_key = 'announcement:' || "
        + ("CAST(announcement_id AS TEXT)" if op.get_context().dialect.name == 'postgresql'
           # SQLite keeps a Uuid as 32 hex digits
           else "substr(announcement_id, 1, 8) || '-' || substr(announcement_id, 9, 4) || '-' "
                "|| substr(announcement_id, 13, 4) || '-' || substr(announcement_id, 17, 4) || '-' "
                "|| substr(announcement_id, 21)")
        + " WHERE announcement_id IS NOT NULL AND dedupe_key IS NULL"
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('uq_notifications_announcement_user')
        batch_op.drop_index('uq_notifications_user_dedupe', postgresql_where=KEYED,
                            sqlite_where=KEYED)
        batch_op.create_index(batch_op.f('ix_notifications_announcement_id'),
                              ['announcement_id'], unique=False)
        batch_op.create_unique_constraint('uq_notifications_user_dedupe',
                                          ['user_id', 'dedupe_key'])
