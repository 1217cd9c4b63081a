"""The committed contracts: `openapi/openapi.json` and `mobile_contracts/errors.json`.

`python -m app openapi` writes them; `tests/test_contracts.py` fails when the code drifts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.config import PROJECT_ROOT

OPENAPI_PATH = PROJECT_ROOT / "openapi" / "openapi.json"
ERRORS_PATH = PROJECT_ROOT / "mobile_contracts" / "errors.json"


def render(data: Any) -> str:
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


def write_contracts() -> list[Path]:
    written = []
    for path, data in ((OPENAPI_PATH, openapi_document()), (ERRORS_PATH, error_catalogue())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(data), encoding="utf-8")
        written.append(path)
    return written
