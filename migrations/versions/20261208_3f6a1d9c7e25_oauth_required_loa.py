"""oauth_required_loa: the identity level a client required (its min_loa, raised by acr_values)
is kept with the authorization code and the client's token family, so that a citizen whose level
falls below it (staff revoke level 2, a changed declaration) has that family ended.

Existing rows get 0 (nothing required): their families are capped, never ended, on a change.

Revision ID: 3f6a1d9c7e25
Revises: 652c42558b6e
Create Date: 2026-12-08 04:45:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "3f6a1d9c7e25"
down_revision: Union[str, Sequence[str], None] = "652c42558b6e"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ("oauth_codes", "oauth_client_sessions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("required_loa", sa.Integer(), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET required_loa = 0"))  # noqa: S608
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("required_loa", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("required_loa")
