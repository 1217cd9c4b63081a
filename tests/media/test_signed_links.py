"""Signed media links (`/api/v1/media/signed/...`). Expiry and tampering of a link handed out
with an incident: tests/incidents/test_media.py."""

from __future__ import annotations

import uuid

from app.core import clock


async def test_a_signature_of_any_characters_is_refused_not_crashing(client):
    media_id, expires = uuid.uuid4(), int(clock.now().timestamp()) + 3600
    for sig in ("âÿ\u0084Ám1", "𝟘" * 20, ""):
        response = await client.get(
            f"/api/v1/media/signed/{media_id}/original", params={"exp": expires, "sig": sig}
        )
        assert response.status_code == 403, sig
        assert response.json()["code"] == "media.link_invalid"
