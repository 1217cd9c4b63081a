"""oauth_pairwise_sector_per_client: a client's pairwise sector is its own unless it registered a
verified sector_identifier_uri; clients that shared a sector by accident are told apart.

Until now the sector defaulted to the first redirect URI's host, or to the client's display name
for a private-use scheme: every loopback (RFC 8252) client shared `127.0.0.1` and so gave one
citizen the same `sub`. Existing subjects are kept wherever that is safe:
- a sector that is the https host of one of the client's redirect URIs stays (OIDC Core 8.1's
  own default: clients on one host belong to whoever controls the host);
- any other sector (a loopback host, a display name) that several clients share stays with the
  oldest of them, and every later one gets its own (`client:<id>`): their citizens' subjects
  change, which is the fix (they were another partner's);
- a sector no other client shares stays: nobody collides with it, and new clients never get one.

Revision ID: 652c42558b6e
Revises: c8d2e5a1f7b4
Create Date: 2026-12-08 04:30:00
"""
import json
from collections import defaultdict
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '652c42558b6e'
down_revision: str | Sequence[str] | None = 'c8d2e5a1f7b4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _https_hosts(redirect_uris: object) -> set[str]:
    if isinstance(redirect_uris, str):
        redirect_uris = json.loads(redirect_uris)
    hosts = set()
    for uri in redirect_uris or []:
        parts = urlsplit(uri)
        if parts.scheme == "https" and parts.hostname:
            hosts.add(parts.hostname)
    return hosts


def upgrade() -> None:
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sector_identifier_uri',
                                      sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, sector_identifier, redirect_uris FROM oauth_clients "
        "ORDER BY created_at, id")).all()
    shared: dict[str, list[str]] = defaultdict(list)
    for client_id, sector, redirect_uris in rows:
        if sector not in _https_hosts(redirect_uris):
            shared[sector].append(client_id)
    for ids in shared.values():
        for client_id in ids[1:]:
            bind.execute(sa.text("UPDATE oauth_clients SET sector_identifier = :sector "
                                 "WHERE id = :id"), {"sector": f"client:{client_id}",
                                                     "id": client_id})


def downgrade() -> None:
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.drop_column('sector_identifier_uri')
