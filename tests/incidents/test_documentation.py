"""docs/incidents.md documents every incident and media setting."""

from __future__ import annotations

from app.core.config import PROJECT_ROOT
from app.incidents.config import IncidentSettings
from app.media.config import MediaSettings


def test_every_incident_and_media_setting_is_documented():
    doc = (PROJECT_ROOT / "docs" / "incidents.md").read_text(encoding="utf-8")
    names = [*IncidentSettings.model_fields, *MediaSettings.model_fields]
    assert [n.upper() for n in names if f"`{n.upper()}`" not in doc] == []
