"""README.md and .env.example stay true: every setting is documented in both."""

from __future__ import annotations

from app.core.config import PROJECT_ROOT, Settings


def test_every_setting_is_in_the_readme_and_env_example():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    missing_readme = [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in readme]
    missing_example = [n.upper() for n in Settings.model_fields if f"{n.upper()}=" not in example]
    assert missing_readme == [], "document these settings in README.md"
    assert missing_example == [], "add these settings to .env.example"
