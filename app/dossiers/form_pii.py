"""Identity numbers typed into dossier forms, encrypted at rest like the account's own CCCD.

The catalogue marks such form fields with `"x-pii": "cccd"` in a procedure's form schema. `seal`
encrypts their values before a form is stored (AES-256-GCM, `app.core.security.encrypt_pii`,
bound to the dossier so a value cannot be moved to another one); `unseal` gives the form back as
typed, for its citizen and for staff (whose reads the service audits). Forms stored before this
existed hold their numbers in clear until migration `20261208_a1d5c0f3e7b2` seals them; `unseal`
returns any value it cannot open as it is.
"""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.exceptions import InvalidTag

from app.core.security import decrypt_pii, encrypt_pii

PII_KEYWORD = "x-pii"
SEALED_PREFIX = "v1."


def context(dossier_id: uuid.UUID) -> str:
    return f"dossier_form:{dossier_id}"


def seal(schema: dict[str, Any], form: dict[str, Any], dossier_id: uuid.UUID) -> dict[str, Any]:
    """A copy of a (validated) form with every value of a field marked `x-pii` encrypted."""
    sealed: dict[str, Any] = _seal(schema, form, context(dossier_id))
    return sealed


def _seal(schema: Any, value: Any, ctx: str) -> Any:
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        return {key: _seal(properties.get(key), item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [_seal(schema.get("items"), item, ctx) for item in value]
    if isinstance(value, str) and schema.get(PII_KEYWORD) and not value.startswith(SEALED_PREFIX):
        return encrypt_pii(value, context=ctx)
    return value


def unseal(form: dict[str, Any], dossier_id: uuid.UUID) -> dict[str, Any]:
    """The form as its citizen typed it."""
    opened: dict[str, Any] = _unseal(form, context(dossier_id))
    return opened


def _unseal(value: Any, ctx: str) -> Any:
    if isinstance(value, dict):
        return {key: _unseal(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [_unseal(item, ctx) for item in value]
    if isinstance(value, str) and value.startswith(SEALED_PREFIX):
        try:
            return decrypt_pii(value, context=ctx)
        except (ValueError, InvalidTag):
            return value  # text that merely looks sealed (a free-text field)
    return value
