"""dossier forms: CCCD numbers encrypted at rest (no schema change)

Forms stored before this held the CCCD numbers typed into them (the mother's, the spouses'...)
in clear, while the account's own CCCD is encrypted. This seals them as app.dossiers.form_pii
does for new forms: AES-256-GCM with PII_ENCRYPTION_KEY, bound to the dossier. The rule is frozen
here (every `cccd` property holding 12 digits: the catalogue's only identity-number field when
this was written), so that later catalogue changes cannot change what this revision does.
Downgrade opens them again.

Revision ID: a1d5c0f3e7b2
Revises: 7b3e9a5c1d42
Create Date: 2026-12-08 05:05:00
"""
import re
from typing import Any, Callable, Sequence, Union

import sqlalchemy as sa
from alembic import op

from app.core.security import decrypt_pii, encrypt_pii

revision: str = 'a1d5c0f3e7b2'
down_revision: Union[str, Sequence[str], None] = '7b3e9a5c1d42'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DOSSIERS = sa.table("dossiers", sa.column("id", sa.Uuid()), sa.column("form", sa.JSON()))
CLEAR = re.compile(r"^[0-9]{12}$")
BATCH = 500


def _walk(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {key: (change(item) if key == "cccd" and isinstance(item, str)
                      else _walk(item, change))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    return value


def _rewrite(make: Callable[[str], Callable[[str], str]]) -> None:
    connection = op.get_bind()
    last = None
    while True:
        query = sa.select(DOSSIERS.c.id, DOSSIERS.c.form).order_by(DOSSIERS.c.id).limit(BATCH)
        if last is not None:
            query = query.where(DOSSIERS.c.id > last)
        rows = connection.execute(query).all()
        for dossier_id, form in rows:
            changed = _walk(form, make(f"dossier_form:{dossier_id}"))
            if changed != form:
                connection.execute(sa.update(DOSSIERS).where(DOSSIERS.c.id == dossier_id)
                                   .values(form=changed))
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def upgrade() -> None:
    def sealer(context: str) -> Callable[[str], str]:
        return lambda v: encrypt_pii(v, context=context) if CLEAR.match(v) else v

    _rewrite(sealer)


def downgrade() -> None:
    def opener(context: str) -> Callable[[str], str]:
        return lambda v: decrypt_pii(v, context=context) if v.startswith("v1.") else v

    _rewrite(opener)
