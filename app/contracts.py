"""The committed contracts: `openapi/openapi.json` and `mobile_contracts/errors.json`.

`python -m app openapi` writes them; `tests/test_contracts.py` fails when the code drifts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.config import PROJECT_ROOT

OPENAPI_FILE = Path("openapi") / "openapi.json"
ERRORS_FILE = Path("mobile_contracts") / "errors.json"
OPENAPI_PATH = PROJECT_ROOT / OPENAPI_FILE
ERRORS_PATH = PROJECT_ROOT / ERRORS_FILE


def render(data: Any) -> str:
    """Stable text: sorted keys, so the same code always writes the same bytes."""
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    return create_app(run_worker=False).openapi()


def error_catalogue() -> dict[str, Any]:
    from app.core.errors import REGISTRY

    openapi_document()  # importing every router registers every code
    return {
        "description": "Every problem code the API answers with (RFC 9457 `code`), with its HTTP "
        "status and the Vietnamese and English messages. Placeholders in braces are filled in.",
        "codes": {
            code: {"status": err.status, "vi": err.vi, "en": err.en}
            for code, err in sorted(REGISTRY.items())
        },
    }


def rendered_contracts() -> dict[Path, str]:
    """Each contract file (relative to the project root) and its content."""
    return {OPENAPI_FILE: render(openapi_document()), ERRORS_FILE: render(error_catalogue())}


def write_contracts(root: Path = PROJECT_ROOT) -> list[Path]:
    written = []
    for relative, text in rendered_contracts().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
